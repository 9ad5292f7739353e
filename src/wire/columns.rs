//! The pull page's column codec: changes in, per-kind tables of columns out, and back (the
//! format is described on the module in `wire.rs`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::Change;
use crate::domain::codes::Coded;
use crate::domain::lifecycle::Status;
use crate::domain::model::{EntityKind, StatusChange};

/// n objects, column-wise, as a page is read (it is written by `TableRef`).
#[derive(Debug, Default, Deserialize)]
pub struct Table {
    #[serde(default)]
    keys: Vec<String>,
    #[serde(default)]
    cols: Vec<Vec<Value>>,
    #[serde(default)]
    nested: BTreeMap<String, Table>,
    #[serde(default)]
    rest: Vec<Map<String, Value>>,
}

impl Table {
    /// The n rows back.
    pub fn decode(self, n: usize) -> Result<Vec<Map<String, Value>>, String> {
        if self.keys.len() != self.cols.len() {
            return Err(format!(
                "{} keys but {} columns",
                self.keys.len(),
                self.cols.len()
            ));
        }
        let mut rows = if self.rest.is_empty() {
            vec![Map::new(); n]
        } else if self.rest.len() == n {
            self.rest
        } else {
            return Err(format!("{} rests for {n} rows", self.rest.len()));
        };
        for (k, col) in self.keys.into_iter().zip(self.cols) {
            if col.len() != n {
                return Err(format!("column {k} has {} values for {n} rows", col.len()));
            }
            for (r, v) in rows.iter_mut().zip(col) {
                r.insert(k.clone(), v);
            }
        }
        for (k, t) in self.nested {
            for (r, m) in rows.iter_mut().zip(t.decode(n)?) {
                r.insert(k.clone(), Value::Object(m));
            }
        }
        Ok(rows)
    }
}

/// A [`Table`] made from references into the page: the same layout, serialised without
/// copying every change's data first (that copy was 40% of serialising a grid's page).
#[derive(Default, Serialize)]
struct TableRef<'a> {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    keys: Vec<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cols: Vec<Vec<&'a Value>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    nested: BTreeMap<&'a str, TableRef<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rest: Vec<BTreeMap<&'a str, &'a Value>>,
}

impl<'a> TableRef<'a> {
    /// Lays rows out column-wise, as [`Table::decode`] reads them back.
    fn encode(mut rows: Vec<BTreeMap<&'a str, &'a Value>>) -> TableRef<'a> {
        let mut t = TableRef::default();
        let Some(first) = rows.first() else {
            return t;
        };
        let common: Vec<&'a str> = first
            .keys()
            .copied()
            .filter(|k| rows.iter().all(|r| r.contains_key(k)))
            .collect();
        for k in common {
            let column: Vec<&'a Value> = rows
                .iter_mut()
                .map(|r| r.remove(k).expect("every row has it"))
                .collect();
            let objects: Option<Vec<BTreeMap<&'a str, &'a Value>>> = column
                .iter()
                .map(|v| {
                    v.as_object()
                        .map(|m| m.iter().map(|(k, v)| (k.as_str(), v)).collect())
                })
                .collect();
            match objects {
                Some(inner) => {
                    t.nested.insert(k, TableRef::encode(inner));
                }
                None => {
                    t.keys.push(k);
                    t.cols.push(column);
                }
            }
        }
        if rows.iter().any(|r| !r.is_empty()) {
            t.rest = rows;
        }
        t
    }
}

/// Where a GPS track (`points`: at, lon, lat, accuracy_m) travels in compact form: times in
/// milliseconds and coordinates in millionths of a degree, each as the difference from the
/// point before, `{"t": [..], "x": [..], "y": [..], "a": [accuracy, ..] or null}`. Only a
/// track that comes back exactly is compacted; any other goes as it is.
const TRACK: &str = "points~";

fn compact_track(points: &Value) -> Option<Value> {
    let list = points.as_array().filter(|l| !l.is_empty())?;
    let with_accuracy = list[0].as_object()?.contains_key("accuracy_m");
    let millionths = |v: &Value| -> Option<i64> {
        let f = v.as_f64().filter(|_| v.is_f64())?;
        let i = (f * 1e6).round();
        (i.abs() < 1e15 && i / 1e6 == f).then_some(i as i64)
    };
    let (mut t, mut x, mut y, mut a) = (vec![], vec![], vec![], vec![]);
    let (mut last_t, mut last_x, mut last_y) = (0i64, 0i64, 0i64);
    for p in list {
        let m = p.as_object()?;
        if m.len() != 3 + with_accuracy as usize {
            return None;
        }
        let at_text = m.get("at")?;
        let at: DateTime<Utc> = serde_json::from_value(at_text.clone()).ok()?;
        let ms = at.timestamp_millis();
        let back = DateTime::<Utc>::from_timestamp_millis(ms)?;
        if back != at || serde_json::to_value(back).ok()? != *at_text {
            return None;
        }
        let (lon, lat) = (millionths(m.get("lon")?)?, millionths(m.get("lat")?)?);
        if with_accuracy {
            let v = m.get("accuracy_m")?;
            if !v.is_f64() {
                return None;
            }
            a.push(v.clone());
        }
        t.push(ms - last_t);
        x.push(lon - last_x);
        y.push(lat - last_y);
        (last_t, last_x, last_y) = (ms, lon, lat);
    }
    Some(serde_json::json!({"t": t, "x": x, "y": y, "a": with_accuracy.then_some(a)}))
}

fn expand_track(v: Value) -> Result<Value, String> {
    #[derive(Deserialize)]
    struct Track {
        t: Vec<i64>,
        x: Vec<i64>,
        y: Vec<i64>,
        a: Option<Vec<Value>>,
    }
    let tr: Track = serde_json::from_value(v).map_err(|e| format!("track: {e}"))?;
    let n = tr.t.len();
    if tr.x.len() != n || tr.y.len() != n || tr.a.as_ref().is_some_and(|a| a.len() != n) {
        return Err("track: columns of different lengths".into());
    }
    let mut accuracy = tr.a.map(|a| a.into_iter());
    let (mut at, mut lon, mut lat) = (0i64, 0i64, 0i64);
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        at = at.checked_add(tr.t[i]).ok_or("track: time out of range")?;
        lon = lon.checked_add(tr.x[i]).ok_or("track: lon out of range")?;
        lat = lat.checked_add(tr.y[i]).ok_or("track: lat out of range")?;
        let time = DateTime::<Utc>::from_timestamp_millis(at).ok_or("track: bad time")?;
        let mut m = Map::new();
        m.insert(
            "at".into(),
            serde_json::to_value(time).map_err(|e| e.to_string())?,
        );
        m.insert("lon".into(), Value::from(lon as f64 / 1e6));
        m.insert("lat".into(), Value::from(lat as f64 / 1e6));
        if let Some(a) = accuracy.as_mut() {
            m.insert("accuracy_m".into(), a.next().unwrap_or(Value::Null));
        }
        out.push(Value::Object(m));
    }
    Ok(Value::Array(out))
}

/// One status change without its record (the change's id): from, to, at, actor, note.
type Step = (Status, Status, DateTime<Utc>, String, Option<String>);

/// A [`Group`] borrowed from the page, for serialising.
#[derive(Serialize)]
struct GroupRef<'a> {
    seq: Vec<i64>,
    id: Vec<Uuid>,
    data: TableRef<'a>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    partial: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<Option<Vec<StepRef<'a>>>>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    history_kept: Vec<u32>,
}

type StepRef<'a> = (Status, Status, DateTime<Utc>, &'a str, Option<&'a str>);

#[derive(Debug, Default, Deserialize)]
struct Group {
    seq: Vec<i64>,
    id: Vec<Uuid>,
    data: Table,
    /// The rows that are partial changes.
    #[serde(default)]
    partial: Vec<usize>,
    #[serde(default)]
    history: Option<Vec<Option<Vec<Step>>>>,
    #[serde(default)]
    history_kept: Vec<u32>,
}

pub fn serialize<S: Serializer>(changes: &[Change], s: S) -> Result<S::Ok, S::Error> {
    let mut kinds: BTreeMap<&'static str, Vec<&Change>> = BTreeMap::new();
    for c in changes {
        kinds.entry(c.kind.code()).or_default().push(c);
    }
    fn steps(h: &[StatusChange]) -> Vec<StepRef<'_>> {
        h.iter()
            .map(|h| (h.from, h.to, h.at, h.actor.as_str(), h.note.as_deref()))
            .collect()
    }
    // The compact tracks are made here; everything else is borrowed from the page.
    let tracks: BTreeMap<&'static str, Vec<Option<Value>>> = kinds
        .iter()
        .map(|(kind, list)| {
            let t = list
                .iter()
                .map(|c| c.data.get("points").and_then(compact_track))
                .collect();
            (*kind, t)
        })
        .collect();
    let mut groups: BTreeMap<&'static str, GroupRef<'_>> = BTreeMap::new();
    for (kind, list) in &kinds {
        let rows = list
            .iter()
            .zip(&tracks[kind])
            .map(|(c, track)| match &c.data {
                Value::Object(m) => {
                    let mut row: BTreeMap<&str, &Value> =
                        m.iter().map(|(k, v)| (k.as_str(), v)).collect();
                    if let Some(track) = track {
                        row.remove("points");
                        row.insert(TRACK, track);
                    }
                    Ok(row)
                }
                _ => Err(S::Error::custom(format!(
                    "{kind} {} is not a JSON object",
                    c.id
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        groups.insert(
            kind,
            GroupRef {
                seq: list.iter().map(|c| c.seq).collect(),
                id: list.iter().map(|c| c.id).collect(),
                data: TableRef::encode(rows),
                partial: (0..list.len()).filter(|i| list[*i].partial).collect(),
                history: list.iter().any(|c| c.history.is_some()).then(|| {
                    list.iter()
                        .map(|c| c.history.as_deref().map(steps))
                        .collect()
                }),
                history_kept: if list.iter().any(|c| c.history_kept > 0) {
                    list.iter().map(|c| c.history_kept).collect()
                } else {
                    Vec::new()
                },
            },
        );
    }
    groups.serialize(s)
}

pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Change>, D::Error> {
    let groups: BTreeMap<String, Group> = BTreeMap::deserialize(d)?;
    let mut out = Vec::new();
    for (kind, g) in groups {
        let kind = EntityKind::from_code(&kind).map_err(D::Error::custom)?;
        let n = g.seq.len();
        let bad = |what: &str| D::Error::custom(format!("{kind}: {what} does not fit {n} rows"));
        if g.id.len() != n {
            return Err(bad("id"));
        }
        if g.history.as_ref().is_some_and(|h| h.len() != n) {
            return Err(bad("history"));
        }
        if !g.history_kept.is_empty() && g.history_kept.len() != n {
            return Err(bad("history_kept"));
        }
        if g.partial.iter().any(|i| *i >= n) {
            return Err(bad("partial"));
        }
        let rows = g
            .data
            .decode(n)
            .map_err(|e| D::Error::custom(format!("{kind}: {e}")))?;
        let partial: std::collections::HashSet<usize> = g.partial.into_iter().collect();
        let mut history = g.history.map(|h| h.into_iter());
        for (i, ((seq, id), mut data)) in g.seq.into_iter().zip(g.id).zip(rows).enumerate() {
            if let Some(track) = data.remove(TRACK) {
                let points = expand_track(track)
                    .map_err(|e| D::Error::custom(format!("{kind} {id}: {e}")))?;
                data.insert("points".into(), points);
            }
            let steps = history.as_mut().and_then(|h| h.next()).flatten();
            out.push(Change {
                seq,
                kind,
                id,
                data: Value::Object(data),
                partial: partial.contains(&i),
                history: steps.map(|s| {
                    s.into_iter()
                        .map(|(from, to, at, actor, note)| StatusChange {
                            record_id: id,
                            from,
                            to,
                            at,
                            actor,
                            note,
                        })
                        .collect()
                }),
                history_kept: g.history_kept.get(i).copied().unwrap_or(0),
            });
        }
    }
    out.sort_by_key(|c| c.seq);
    Ok(out)
}

/// A page's `changes` as they travel, in the API's description (a description only: the
/// codec above is the format, and ARCHITECTURE.md's "Pull pages" explains it).
#[cfg(feature = "server")]
pub struct PullChanges;

#[cfg(feature = "server")]
mod described {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{
        AdditionalProperties, ArrayBuilder, ArrayItems, KnownFormat, ObjectBuilder, Ref, Schema,
        SchemaFormat, SchemaType, Type,
    };
    use utoipa::{PartialSchema, ToSchema};

    use super::PullChanges;
    use crate::domain::lifecycle::Status;
    use crate::domain::model::EntityKind;

    const SEE: &str = "See ARCHITECTURE.md, \"Pull pages\".";

    fn of(t: Type) -> ObjectBuilder {
        ObjectBuilder::new().schema_type(t)
    }

    fn array(items: impl Into<ArrayItems>) -> ArrayBuilder {
        ArrayBuilder::new().items(items)
    }

    fn any() -> ObjectBuilder {
        ObjectBuilder::new().schema_type(SchemaType::AnyValue)
    }

    fn named<T: ToSchema>() -> Ref {
        Ref::from_schema_name(T::name())
    }

    /// The schema of a coded enum, inline (where a reference cannot stand).
    fn inline<T: PartialSchema>() -> Schema {
        match T::schema() {
            RefOr::T(s) => s,
            RefOr::Ref(_) => unreachable!("a coded enum's schema is written out"),
        }
    }

    /// The hand-written schemas of the column layout, by name.
    fn tables() -> Vec<(String, RefOr<Schema>)> {
        let rows = |t: Type, what: &str| array(of(t)).description(Some(what.to_owned()));
        let step = ArrayBuilder::new()
            .description(Some(
                "One status change: from, to, when, who (username), note.",
            ))
            .prefix_items([
                inline::<Status>(),
                inline::<Status>(),
                of(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
                    .into(),
                of(Type::String).into(),
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                    .into(),
            ])
            .items(ArrayItems::False)
            .min_items(Some(5));
        let group = ObjectBuilder::new()
            .description(Some(format!(
                "One kind's changes, column by column: row i is the i-th change of this kind in \
                 version order. {SEE}"
            )))
            .property(
                "seq",
                rows(
                    Type::Integer,
                    "Each change's server sequence number (its version).",
                ),
            )
            .required("seq")
            .property(
                "id",
                array(of(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid))))
                    .description(Some("Each entity's id.")),
            )
            .required("id")
            .property("data", named::<ColumnTable>())
            .required("data")
            .property(
                "partial",
                rows(
                    Type::Integer,
                    "The rows that are partial changes: only the fields changed after the \
                     pull's `base`, to lay over the device's copy.",
                ),
            )
            .property(
                "history",
                array(
                    ArrayBuilder::new()
                        .schema_type(SchemaType::from_iter([Type::Array, Type::Null]))
                        .items(step),
                )
                .description(Some(
                    "Per row: the status changes after the first `history_kept` ones, or null \
                     when the change brings none.",
                )),
            )
            .property(
                "history_kept",
                rows(
                    Type::Integer,
                    "Per row: how many of the record's earliest status changes the device keeps \
                     before those in `history`.",
                ),
            );
        let table = ObjectBuilder::new()
            .description(Some(format!(
                "n JSON objects (the changes' `data`), column-wise: the keys every row has, with \
                 a column of n values each; nested tables for keys whose value is an object in \
                 every row; and per row the rest (left out when every rest is empty). A GPS \
                 track (`points`) may travel in a row's rest as `points~`: `{{t, x, y, a}}`, \
                 milliseconds and millionths of a degree as differences from the point before \
                 (`a`: the accuracies, or null). {SEE}"
            )))
            .property("keys", array(of(Type::String)))
            .property("cols", array(array(any())))
            .property(
                "nested",
                ObjectBuilder::new().additional_properties(Some(AdditionalProperties::RefOr(
                    named::<ColumnTable>().into(),
                ))),
            )
            .property(
                "rest",
                array(
                    ObjectBuilder::new()
                        .additional_properties(Some(AdditionalProperties::FreeForm(true))),
                ),
            );
        vec![
            (ChangeGroup::name().into_owned(), group.into()),
            (ColumnTable::name().into_owned(), table.into()),
        ]
    }

    /// Names of the schemas [`tables`] writes.
    struct ChangeGroup;
    struct ColumnTable;

    impl PartialSchema for ChangeGroup {
        fn schema() -> RefOr<Schema> {
            tables().swap_remove(0).1
        }
    }

    impl ToSchema for ChangeGroup {}

    impl PartialSchema for ColumnTable {
        fn schema() -> RefOr<Schema> {
            tables().swap_remove(1).1
        }
    }

    impl ToSchema for ColumnTable {}

    impl PartialSchema for PullChanges {
        fn schema() -> RefOr<Schema> {
            ObjectBuilder::new()
                .description(Some(format!(
                    "The page's changes grouped by entity kind (its code, e.g. `HOUSE`), each \
                     kind's laid out column by column; decoded, they are every change in version \
                     order, each `{{seq, kind, id, data, partial?, history?, history_kept?}}`. \
                     {SEE}"
                )))
                .property_names(Some(inline::<EntityKind>()))
                .additional_properties(Some(AdditionalProperties::RefOr(
                    named::<ChangeGroup>().into(),
                )))
                .into()
        }
    }

    impl ToSchema for PullChanges {
        fn schemas(out: &mut Vec<(String, RefOr<Schema>)>) {
            out.extend(tables());
        }
    }
}
