//! One reader of the Prometheus text exposition (0.0.4) for every test: samples with their
//! labels, value and optional timestamp; comments and malformed lines are skipped.

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// In exposition order.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Explicit timestamp (ms), if the line has one.
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    /// The label's value ("" when absent).
    pub fn label(&self, name: &str) -> String {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

/// Every sample of `text`.
pub fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

/// The samples of metric `name`.
pub fn named<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = Sample> + 'a {
    samples(text).into_iter().filter(move |s| s.name == name)
}

/// Sums the samples of `name` by the value of `label`.
pub fn sum_by(text: &str, name: &str, label: &str) -> std::collections::BTreeMap<String, f64> {
    let mut out = std::collections::BTreeMap::new();
    for s in named(text, name) {
        *out.entry(s.label(label)).or_insert(0.0) += s.value;
    }
    out
}

fn parse_line(line: &str) -> Option<Sample> {
    let (name, rest) = match line.find(['{', ' ']) {
        Some(i) => line.split_at(i),
        None => return None,
    };
    let (labels, rest) = match rest.strip_prefix('{') {
        Some(r) => parse_labels(r)?,
        None => (Vec::new(), rest),
    };
    let mut fields = rest.split_whitespace();
    let value = match fields.next()? {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    let timestamp_ms = fields.next().and_then(|t| t.parse().ok());
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
        timestamp_ms,
    })
}

/// Labels up to the closing brace; returns them and the rest of the line.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches(',');
        if let Some(rest) = s.strip_prefix('}') {
            return Some((labels, rest));
        }
        let (key, rest) = s.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (i, '"') => break i,
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        s = &rest[end + 1..];
    }
}

/// The samples on `http://127.0.0.1:{port}/metrics` (none when it does not answer).
pub async fn scrape(port: u16) -> Vec<Sample> {
    match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
        Ok(r) => samples(&r.text().await.unwrap_or_default()),
        Err(_) => Vec::new(),
    }
}

/// The sum of every sample of `name` on `port`'s `/metrics` (0 when it does not answer).
pub async fn metric_sum(port: u16, name: &str) -> f64 {
    scrape(port)
        .await
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_labels_values_and_timestamps() {
        let text = "# HELP x y\nx{a=\"1\",b=\"q\\\"uote\"} 2.5\ny 3 1000\nz{} NaN\n";
        let s = samples(text);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].label("b"), "q\"uote");
        assert_eq!(s[0].value, 2.5);
        assert_eq!((s[1].value, s[1].timestamp_ms), (3.0, Some(1000)));
        assert!(s[2].value.is_nan());
        assert_eq!(
            sum_by("k{e=\"a\"} 1\nk{e=\"a\"} 2\nk{e=\"b\"} 5\n", "k", "e")["a"],
            3.0
        );
    }
}
