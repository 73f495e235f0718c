//! The tracking plan's file format and its resolved model.
//!
//! Contract: [`super::Plan::parse`] (in `parse.rs`) turns a YAML file of this shape into a
//! [`super::Plan`] whose every reference resolves (each event's properties name entries of the
//! shared dictionary, each consent purpose is declared, each pattern compiles, each bound fits its
//! type), or refuses it with a [`super::PlanError`] naming the place. Unknown keys are refused
//! everywhere (`deny_unknown_fields`), so a typo in a rule never passes as "no rule".
//! See docs/tracking-plan.md.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanFile {
    pub plan: PlanMeta,
    #[serde(default)]
    pub naming: Naming,
    #[serde(default)]
    pub consent: ConsentFile,
    /// The shared property dictionary: every property, trait and page/screen property, by name.
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyDef>,
    /// `context` fields by dotted path (`os.name`, `device.advertisingId`), typed and classed
    /// like properties.
    #[serde(default)]
    pub context: BTreeMap<String, PropertyDef>,
    #[serde(default)]
    pub events: Vec<EventDef>,
    #[serde(default)]
    pub identify: Option<IdentifyDef>,
    #[serde(default)]
    pub page: Option<ViewDef>,
    #[serde(default)]
    pub screen: Option<ViewDef>,
}

/// `plan:`: which plan this is and its version (semantic versioning: a breaking change needs a
/// new major version, see `compat.rs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanMeta {
    pub id: String,
    pub version: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub owner: Option<String>,
}

/// `naming:`: regular expressions every event, property and trait name must match (checked by
/// the lint; the processor's naming violations use the same patterns).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Naming {
    pub events: Option<String>,
    pub properties: Option<String>,
    pub traits: Option<String>,
    /// What the patterns mean, for people (shown in the rendered document).
    #[serde(default)]
    pub description: Option<String>,
}

/// `consent:`: the purposes events can be collected for, and what applies to an event without
/// consent information.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentFile {
    /// Purpose name → description (Segment's consent categories).
    #[serde(default)]
    pub purposes: BTreeMap<String, String>,
    /// Whether an event that carries no `context.consent` counts as consented.
    #[serde(default)]
    pub default_without_consent_info: Option<ConsentDefault>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentDefault {
    Granted,
    Denied,
}

/// The JSON types a property can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyType {
    String,
    Number,
    Integer,
    Boolean,
    Object,
    Array,
}

impl PropertyType {
    pub fn as_str(self) -> &'static str {
        match self {
            PropertyType::String => "string",
            PropertyType::Number => "number",
            PropertyType::Integer => "integer",
            PropertyType::Boolean => "boolean",
            PropertyType::Object => "object",
            PropertyType::Array => "array",
        }
    }

    /// Whether a JSON value has this type (an integer is a number too; a number with a
    /// fractional part is not an integer).
    pub fn admits(self, v: &Value) -> bool {
        match self {
            PropertyType::String => v.is_string(),
            PropertyType::Number => v.is_number(),
            PropertyType::Integer => {
                v.is_i64() || v.is_u64() || v.as_f64().is_some_and(|f| f.fract() == 0.0)
            }
            PropertyType::Boolean => v.is_boolean(),
            PropertyType::Object => v.is_object(),
            PropertyType::Array => v.is_array(),
        }
    }
}

/// String formats a property can require.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Email,
    Uri,
    DateTime,
    Date,
    Uuid,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Email => "email",
            Format::Uri => "uri",
            Format::DateTime => "date-time",
            Format::Date => "date",
            Format::Uuid => "uuid",
        }
    }
}

/// Classes of personal data (what the value is), for the privacy review and the docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiClass {
    Email,
    Phone,
    Name,
    Address,
    Ip,
    DeviceId,
    UserId,
    Location,
    FreeText,
    Other,
}

impl PiiClass {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiClass::Email => "email",
            PiiClass::Phone => "phone",
            PiiClass::Name => "name",
            PiiClass::Address => "address",
            PiiClass::Ip => "ip",
            PiiClass::DeviceId => "device_id",
            PiiClass::UserId => "user_id",
            PiiClass::Location => "location",
            PiiClass::FreeText => "free_text",
            PiiClass::Other => "other",
        }
    }
}

/// What happens to a PII value before the event leaves the processor: kept as sent, replaced by
/// a keyed hash, or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiAction {
    Keep,
    Hash,
    Drop,
}

impl PiiAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PiiAction::Keep => "keep",
            PiiAction::Hash => "hash",
            PiiAction::Drop => "drop",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pii {
    pub class: PiiClass,
    pub action: PiiAction,
}

/// One entry of the property dictionary (or of `context`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyDef {
    #[serde(rename = "type")]
    pub kind: PropertyType,
    #[serde(default)]
    pub description: Option<String>,
    /// Required wherever the property is used, unless the event says otherwise.
    #[serde(default)]
    pub required: bool,
    /// Whether JSON `null` is accepted (it then counts as present).
    #[serde(default)]
    pub nullable: bool,
    #[serde(default, rename = "enum")]
    pub allowed: Option<Vec<Value>>,
    #[serde(default)]
    pub format: Option<Format>,
    #[serde(default)]
    pub minimum: Option<f64>,
    #[serde(default)]
    pub maximum: Option<f64>,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub min_length: Option<u64>,
    #[serde(default)]
    pub max_length: Option<u64>,
    #[serde(default)]
    pub pii: Option<Pii>,
}

/// A property as an event uses it: an entry of the dictionary, optionally with its own
/// `required` flag (`plan: {required: true}`, or `plan:` alone for the dictionary's).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyUse {
    #[serde(default)]
    pub required: Option<bool>,
}

/// An event's lifecycle: drafts and deprecated events are still validated; the lint warns when
/// a KPI counts a deprecated one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Draft,
    #[default]
    Active,
    Deprecated,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Draft => "draft",
            Status::Active => "active",
            Status::Deprecated => "deprecated",
        }
    }
}

/// One planned track event.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventDef {
    pub name: String,
    pub description: String,
    pub owner: String,
    #[serde(default)]
    pub status: Status,
    /// The event's own version (a counter people bump when its shape changes).
    #[serde(default = "one")]
    pub version: u32,
    #[serde(default)]
    pub properties: BTreeMap<String, Option<PropertyUse>>,
    /// Whether properties the event does not list are allowed.
    #[serde(default)]
    pub additional_properties: bool,
    /// The consent purpose the event is collected for (a key of `consent.purposes`).
    #[serde(default)]
    pub consent: Option<String>,
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// The KPIs of the catalog that count this event (checked against the catalog by the lint).
    #[serde(default)]
    pub kpis: Vec<String>,
}

fn one() -> u32 {
    1
}

/// `identify:`: the traits an identify call may carry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentifyDef {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub traits: BTreeMap<String, Option<PropertyUse>>,
    #[serde(default)]
    pub additional_traits: bool,
    #[serde(default)]
    pub consent: Option<String>,
    #[serde(default)]
    pub retention_days: Option<u32>,
}

/// `page:` / `screen:`: the properties a page or screen view may carry.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewDef {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub properties: BTreeMap<String, Option<PropertyUse>>,
    #[serde(default)]
    pub additional_properties: bool,
    #[serde(default)]
    pub consent: Option<String>,
    #[serde(default)]
    pub retention_days: Option<u32>,
}
