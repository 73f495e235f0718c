//! Grafana dashboard JSON, built the way Grafana's own dashboard model (grafana-foundation-sdk)
//! writes it, so that a dashboard parses and re-serialises without a field lost or changed.
//!
//! Contract: every panel and every query uses the `datasource` variable; panels flow left to
//! right on Grafana's 24-column grid, wrapping, never overlapping; ids are sequential and uids
//! fixed, so the same catalog always gives the same bytes.

use northstar_schemas::catalog::{Format, Kpi};
use serde_json::{json, Value};

/// The variable id Grafana's model writes when none is set.
const NIL_ID: &str = "00000000-0000-0000-0000-000000000000";

/// The Prometheus datasource every panel uses, through the `datasource` variable.
pub fn datasource() -> Value {
    json!({"type": "prometheus", "uid": "${datasource}"})
}

/// One query.
#[derive(Debug, Clone)]
pub struct Query {
    pub expr: String,
    pub legend: String,
    /// An instant query (tables, single values) instead of a range.
    pub instant: bool,
    /// Minimum step, e.g. the window's length for the history of final windows.
    pub interval: Option<String>,
}

impl Query {
    pub fn range(expr: impl Into<String>, legend: impl Into<String>) -> Self {
        Self {
            expr: expr.into(),
            legend: legend.into(),
            instant: false,
            interval: None,
        }
    }

    pub fn instant(expr: impl Into<String>, legend: impl Into<String>) -> Self {
        Self {
            instant: true,
            ..Self::range(expr, legend)
        }
    }

    /// With a minimum step.
    pub fn every(mut self, interval: &str) -> Self {
        self.interval = Some(interval.into());
        self
    }

    fn to_json(&self, ref_id: char) -> Value {
        let mut q = json!({
            "datasource": datasource(),
            "editorMode": "code",
            "expr": self.expr,
            "instant": self.instant,
            "legendFormat": self.legend,
            "range": !self.instant,
            "refId": ref_id.to_string(),
        });
        if self.instant {
            q["format"] = json!("table");
        }
        if let Some(i) = &self.interval {
            q["interval"] = json!(i);
        }
        q
    }
}

/// The kinds of panel the dashboards use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Stat,
    TimeSeries,
    Bars,
    Table,
}

/// One panel before layout.
#[derive(Debug, Clone)]
pub struct Panel {
    pub kind: Kind,
    pub title: String,
    pub description: String,
    pub unit: String,
    pub width: u32,
    pub height: u32,
    pub queries: Vec<Query>,
    /// For tables: merge the queries' values into one row per label set.
    pub merge: bool,
}

impl Panel {
    pub fn new(
        kind: Kind,
        title: impl Into<String>,
        description: impl Into<String>,
        unit: &str,
    ) -> Self {
        let (width, height) = match kind {
            Kind::Stat => (6, 4),
            Kind::Table => (12, 9),
            Kind::TimeSeries | Kind::Bars => (12, 8),
        };
        Self {
            kind,
            title: title.into(),
            description: description.into(),
            unit: unit.into(),
            width,
            height,
            queries: Vec::new(),
            merge: false,
        }
    }

    pub fn query(mut self, q: Query) -> Self {
        self.queries.push(q);
        self
    }

    pub fn size(mut self, width: u32, height: u32) -> Self {
        self.width = width;
        self.height = height;
        self
    }

    pub fn merged(mut self) -> Self {
        self.merge = true;
        self
    }

    fn options(&self) -> Value {
        match self.kind {
            Kind::Stat => json!({
                "colorMode": "value",
                "graphMode": if self.queries.iter().any(|q| !q.instant) { "area" } else { "none" },
                "justifyMode": "auto",
                "orientation": "auto",
                "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": false},
                "textMode": "auto",
            }),
            Kind::TimeSeries | Kind::Bars => json!({
                "legend": {"calcs": [], "displayMode": "list", "placement": "bottom", "showLegend": true},
                "tooltip": {"mode": "multi", "sort": "desc"},
            }),
            Kind::Table => json!({
                "cellHeight": "sm",
                "footer": {"countRows": false, "fields": "", "reducer": ["sum"], "show": false},
                "frameIndex": 0,
                "showHeader": true,
                "showTypeIcons": false,
            }),
        }
    }

    fn custom(&self) -> Value {
        match self.kind {
            Kind::TimeSeries => {
                json!({"drawStyle": "line", "lineInterpolation": "stepAfter", "lineWidth": 1, "fillOpacity": 10, "showPoints": "never", "spanNulls": false})
            }
            Kind::Bars => {
                json!({"drawStyle": "bars", "lineWidth": 1, "fillOpacity": 80, "showPoints": "never", "spanNulls": false})
            }
            Kind::Stat | Kind::Table => json!({}),
        }
    }

    fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Stat => "stat",
            Kind::TimeSeries | Kind::Bars => "timeseries",
            Kind::Table => "table",
        }
    }

    fn to_json(&self, id: u32, x: u32, y: u32) -> Value {
        let targets: Vec<Value> = self
            .queries
            .iter()
            .zip('A'..='Z')
            .map(|(q, r)| q.to_json(r))
            .collect();
        let transformations = if self.merge {
            json!([{"id": "merge", "options": {}}])
        } else {
            json!([])
        };
        json!({
            "datasource": datasource(),
            "description": self.description,
            "fieldConfig": {
                "defaults": {"custom": self.custom(), "unit": self.unit},
                "overrides": [],
            },
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "id": id,
            "options": self.options(),
            "repeatDirection": "h",
            "targets": targets,
            "title": self.title,
            "transformations": transformations,
            "transparent": false,
            "type": self.type_name(),
        })
    }
}

/// A dashboard template variable.
#[derive(Debug, Clone)]
pub struct Variable {
    pub name: String,
    pub label: String,
    /// `label_values(…)` query.
    pub query: String,
    pub multi: bool,
}

impl Variable {
    fn to_json(&self) -> Value {
        let mut v = json!({
            "auto": false,
            "auto_count": 30,
            "auto_min": "10s",
            "datasource": datasource(),
            "hide": 0,
            "id": NIL_ID,
            "includeAll": self.multi,
            "label": self.label,
            "multi": self.multi,
            "name": self.name,
            "options": [],
            "query": {"query": self.query, "refId": "StandardVariableQuery"},
            "refresh": 2,
            "regex": "",
            "skipUrlSync": false,
            "sort": 1,
            "type": "query",
        });
        if self.multi {
            v["allValue"] = json!(".*");
            v["current"] = json!({"selected": true, "text": ["All"], "value": ["$__all"]});
        }
        v
    }
}

/// A dashboard being built.
#[derive(Debug)]
pub struct Dashboard {
    pub uid: &'static str,
    pub title: String,
    pub description: String,
    pub time_from: &'static str,
    pub refresh: &'static str,
    pub variables: Vec<Variable>,
    pub panels: Vec<Panel>,
}

impl Dashboard {
    pub fn new(
        uid: &'static str,
        title: &str,
        description: &str,
        time_from: &'static str,
        refresh: &'static str,
    ) -> Self {
        Self {
            uid,
            title: title.into(),
            description: description.into(),
            time_from,
            refresh,
            variables: Vec::new(),
            panels: Vec::new(),
        }
    }

    pub fn panel(&mut self, p: Panel) {
        self.panels.push(p);
    }

    /// The dashboard's JSON, panels laid out in order, wrapping at 24 columns.
    pub fn to_json(&self, default_datasource: &str) -> Value {
        let (mut x, mut y, mut row_height) = (0, 0, 0);
        let mut panels = Vec::new();
        for (i, p) in self.panels.iter().enumerate() {
            if x + p.width > 24 {
                x = 0;
                y += row_height;
                row_height = 0;
            }
            panels.push(p.to_json(i as u32 + 1, x, y));
            x += p.width;
            row_height = row_height.max(p.height);
        }
        let mut vars = vec![json!({
            "auto": false,
            "auto_count": 30,
            "auto_min": "10s",
            "current": {"selected": false, "text": "Northstar Prometheus", "value": default_datasource},
            "hide": 0,
            "id": NIL_ID,
            "includeAll": false,
            "label": "Prometheus",
            "multi": false,
            "name": "datasource",
            "options": [],
            "query": "prometheus",
            "refresh": 1,
            "regex": "",
            "skipUrlSync": false,
            "type": "datasource",
        })];
        vars.extend(self.variables.iter().map(Variable::to_json));
        json!({
            "annotations": {"list": []},
            "description": self.description,
            "editable": true,
            "fiscalYearStartMonth": 0,
            "graphTooltip": 1,
            "links": [{
                "asDropdown": true,
                "icon": "external link",
                "includeVars": false,
                "keepTime": true,
                "tags": ["northstar"],
                "targetBlank": false,
                "title": "Northstar dashboards",
                "tooltip": "",
                "type": "dashboards",
                "url": "",
            }],
            "panels": panels,
            "refresh": self.refresh,
            "schemaVersion": 36,
            "style": "dark",
            "tags": ["northstar"],
            "templating": {"list": vars},
            "time": {"from": self.time_from, "to": "now"},
            "timezone": "utc",
            "title": self.title,
            "uid": self.uid,
            "version": 1,
            "weekStart": "monday",
        })
    }
}

/// Grafana's unit for a KPI's values.
pub fn unit(k: &Kpi) -> String {
    match (k.presentation.format, k.presentation.unit.as_deref()) {
        (Format::Percent, _) => "percentunit".into(),
        (Format::Currency, Some(code)) => format!("currency{code}"),
        (Format::Duration, Some(u)) => u.into(),
        (Format::Duration, None) => "s".into(),
        _ => "short".into(),
    }
}

/// The file-provisioning of the datasource (fixed uid) and of the dashboards folder.
pub fn provisioning(
    datasource_uid: &str,
    prometheus_url: &str,
    dashboards_path: &str,
) -> (String, String) {
    let datasources = format!(
        "# Generated by `northstar-sink dashboards generate`: do not edit by hand.\n\
         apiVersion: 1\n\
         datasources:\n\
         \x20 - name: Northstar Prometheus\n\
         \x20   uid: {datasource_uid}\n\
         \x20   type: prometheus\n\
         \x20   access: proxy\n\
         \x20   url: {prometheus_url}\n\
         \x20   isDefault: true\n\
         \x20   jsonData:\n\
         \x20     timeInterval: 15s\n"
    );
    let dashboards = format!(
        "# Generated by `northstar-sink dashboards generate`: do not edit by hand.\n\
         apiVersion: 1\n\
         providers:\n\
         \x20 - name: northstar\n\
         \x20   folder: Northstar\n\
         \x20   type: file\n\
         \x20   disableDeletion: true\n\
         \x20   allowUiUpdates: false\n\
         \x20   options:\n\
         \x20     path: {dashboards_path}\n\
         \x20     foldersFromFilesStructure: false\n"
    );
    (datasources, dashboards)
}
