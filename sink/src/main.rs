//! `northstar-sink`: the command line of [`northstar_sink::cli`], with the lake's object store as
//! configured.

fn main() -> anyhow::Result<()> {
    northstar_sink::cli::main(std::convert::identity)
}
