//! `northstar-sink` with faults injected into the lake's object store, for the crash tests
//! (`northstar_e2e::faults`): the same commands and configuration, plus
//! `NORTHSTAR_FAULT_ABORT_IN_WRITE` / `NORTHSTAR_FAULT_ABORT_AFTER`.

use std::sync::Arc;

use northstar_e2e::faults::{self, FaultyStore};
use northstar_runtime::objstore::ObjectRoot;

fn inject(root: ObjectRoot) -> ObjectRoot {
    let local = root.local_path("");
    let faults = faults::from_env();
    root.map_store(|inner| Arc::new(FaultyStore::new(inner, local, faults)))
}

fn main() -> anyhow::Result<()> {
    northstar_sink::cli::main(inject)
}
