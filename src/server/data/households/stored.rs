//! What is stored in the villages a households file touches: houses, households and people,
//! indexed the ways rows are matched to them (id, ID number, members, house and place).

use std::collections::HashMap;

use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::codes::{Coded, IdType};
use crate::domain::model::EntityKind;
use crate::server::data::{DataError, internal};
use crate::server::db::{Sql, V};
use crate::server::repo::{self, Entity, Scope};

/// A stored house, household or person: what matching needs, with its JSON kept as text and
/// parsed only when the import uses it (a county's worth of parsed maps would not fit well).
pub(super) struct Stored {
    pub(super) kind: EntityKind,
    pub(super) grid_id: Uuid,
    pub(super) grid_code: String,
    pub(super) parent_id: Option<Uuid>,
    /// A person's name (to match people without an ID number within their household).
    pub(super) name: Option<String>,
    pub(super) data: String,
    pub(super) meta: String,
    pub(super) version: i64,
    pub(super) created_at: String,
}

impl Stored {
    pub(super) fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, DataError> {
        serde_json::from_str(&self.data).map_err(internal)
    }

    pub(super) fn entity(&self, id: Uuid) -> Result<Entity, DataError> {
        Ok(Entity {
            id,
            kind: self.kind,
            grid_id: self.grid_id,
            grid_code: self.grid_code.clone(),
            parent_id: self.parent_id,
            data: self.parse()?,
            meta: serde_json::from_str(&self.meta).map_err(internal)?,
            version: self.version,
            created_at: repo::parse_ts(&self.created_at)?,
        })
    }
}

/// What is stored in the villages the file touches.
#[derive(Default)]
pub(super) struct Existing {
    pub(super) entities: HashMap<Uuid, Stored>,
    pub(super) by_id_number: HashMap<String, Uuid>,
    pub(super) members: HashMap<Uuid, Vec<Uuid>>,
    pub(super) houses_by_place: HashMap<(String, String, String), Uuid>,
    pub(super) households_by_house: HashMap<Uuid, Vec<Uuid>>,
    pub(super) loaded_prefixes: std::collections::HashSet<String>,
}

pub(in crate::server::data) fn entity_from_row(r: &[V]) -> Result<Entity, DataError> {
    let id = Uuid::parse_str(r[0].str()?).map_err(internal)?;
    let data: Value = serde_json::from_str(r[5].str()?).map_err(internal)?;
    Ok(Entity {
        id,
        kind: EntityKind::from_code(r[1].str()?).map_err(internal)?,
        grid_id: Uuid::parse_str(r[2].str()?).map_err(internal)?,
        grid_code: r[3].string()?,
        parent_id: r[4]
            .opt_string()?
            .map(|s| Uuid::parse_str(&s))
            .transpose()
            .map_err(internal)?,
        data: match data {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        meta: serde_json::from_str(r[6].str()?).map_err(internal)?,
        version: r[7].i64()?,
        created_at: repo::parse_ts(r[8].str()?)?,
    })
}

impl Existing {
    fn add(&mut self, id: Uuid, mut e: Stored) -> Result<(), DataError> {
        let data: Value = serde_json::from_str(&e.data).map_err(internal)?;
        let s = |k: &str| data.get(k).and_then(Value::as_str);
        match e.kind {
            EntityKind::Person => {
                if let Some(n) = s("id_number")
                    && s("id_type") == Some(IdType::ResidentCard.code())
                {
                    self.by_id_number.insert(n.to_owned(), id);
                }
                if let Some(h) = e.parent_id {
                    self.members.entry(h).or_default().push(id);
                }
                e.name = s("name").map(str::to_owned);
            }
            EntityKind::House => {
                let place = (
                    e.grid_code.clone(),
                    s("number").unwrap_or("").to_owned(),
                    s("address").unwrap_or("").to_owned(),
                );
                self.houses_by_place.insert(place, id);
            }
            EntityKind::Household => {
                if let Some(house) = s("house_id").and_then(|h| Uuid::parse_str(h).ok()) {
                    self.households_by_house.entry(house).or_default().push(id);
                }
            }
            _ => {}
        }
        self.entities.insert(id, e);
        Ok(())
    }

    /// Loads the houses, households and people of a village (by its code prefix), once.
    pub(super) fn load_area(&mut self, db: &mut dyn Sql, prefix: &str) -> Result<(), DataError> {
        if !self.loaded_prefixes.insert(prefix.to_owned()) {
            return Ok(());
        }
        let (clause, args) = Scope::Area(prefix.to_owned()).clause(1);
        // `kind || ''` keeps the planner on the grid-code index (SQLite would otherwise walk
        // every house and person of the county through the kind index, once per village).
        let rows = db.query(
            &format!(
                "SELECT id, kind, grid_id, grid_code, parent_id, data, meta, version, created_at
                 FROM entities WHERE {clause} AND kind || '' IN ('HOUSE', 'HOUSEHOLD', 'PERSON')"
            ),
            &args,
        )?;
        for r in rows {
            let id = Uuid::parse_str(r[0].str()?).map_err(internal)?;
            if self.entities.contains_key(&id) {
                continue;
            }
            let stored = Stored {
                kind: EntityKind::from_code(r[1].str()?).map_err(internal)?,
                grid_id: Uuid::parse_str(r[2].str()?).map_err(internal)?,
                grid_code: r[3].string()?,
                parent_id: r[4]
                    .opt_string()?
                    .map(|s| Uuid::parse_str(&s))
                    .transpose()
                    .map_err(internal)?,
                name: None,
                data: r[5].string()?,
                meta: r[6].string()?,
                version: r[7].i64()?,
                created_at: r[8].string()?,
            };
            self.add(id, stored)?;
        }
        Ok(())
    }

    /// An entity named by id in the file, wherever it is stored.
    pub(super) fn by_id(
        &mut self,
        db: &mut dyn Sql,
        id: Uuid,
    ) -> Result<Option<&Stored>, DataError> {
        if !self.entities.contains_key(&id)
            && let Some(e) = repo::get_entity(db, id)?
        {
            let stored = Stored {
                kind: e.kind,
                grid_id: e.grid_id,
                grid_code: e.grid_code.clone(),
                parent_id: e.parent_id,
                name: None,
                data: Value::Object(e.data).to_string(),
                meta: serde_json::to_string(&e.meta).map_err(internal)?,
                version: e.version,
                created_at: repo::ts(e.created_at),
            };
            self.add(id, stored)?;
        }
        Ok(self.entities.get(&id))
    }
}
