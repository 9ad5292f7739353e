//! Importing grid boundaries: a GeoJSON FeatureCollection, one Polygon feature per grid with
//! its 15-digit code in `properties.code` (or `grid_code`, `网格编码`). A stored grid gets the
//! new boundary (and name, when given); a new code makes a new grid, which needs `name`,
//! `village` and `town` (and `county`, unless the county already has grids).

use std::collections::{BTreeSet, HashMap};

use geo::Validation;
use serde_json::{Map, Value};

use super::households::entity_from_row;
use super::pipeline::{Bar, Importer, Payload, Planned, Seqs, Write, write_entities};
use super::table::RowErrors;
use super::{Ctx, DataError, ImportReport};
use crate::domain::geo::{Grid, GridCode, polygon_from_geometry};
use crate::domain::model::{EntityKind, new_id};
use crate::server::db::Sql;
use crate::server::repo;

fn prop<'a>(p: &'a Map<String, Value>, names: &[&str]) -> Option<(&'a str, String)> {
    names.iter().find_map(|n| {
        p.get_key_value(*n).and_then(|(k, v)| match v {
            Value::String(s) if !s.trim().is_empty() => Some((k.as_str(), s.trim().to_owned())),
            Value::Number(n) => Some((k.as_str(), n.to_string())),
            _ => None,
        })
    })
}

/// A GeoJSON file of grid boundaries, through the import pipeline.
pub(super) struct GridsImport {
    features: Vec<geojson::Feature>,
    /// The stored grids of the actor's scope, by code.
    stored: HashMap<String, repo::Entity>,
    /// The county's name as the stored grids have it (a new grid may leave it out).
    county_name: Option<String>,
    seqs: Seqs,
}

/// A feature as read: its row (the feature's number) and the grid to write.
pub(super) struct GridRow {
    row: usize,
    write: Write,
}

impl GridsImport {
    /// Reads the file as a GeoJSON FeatureCollection.
    pub(super) fn new(file: &str, bytes: &[u8]) -> Result<GridsImport, DataError> {
        let read_err = |reason: String| DataError::Read {
            file: file.to_owned(),
            reason,
        };
        let text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))
            .map_err(|e| read_err(format!("GeoJSON 文件须为 UTF-8 编码 ({e})")))?;
        let gj: geojson::GeoJson = text.parse().map_err(|e: geojson::Error| {
            read_err(format!("不是有效的 GeoJSON，请用 GIS 软件重新导出 ({e})"))
        })?;
        let geojson::GeoJson::FeatureCollection(fc) = gj else {
            return Err(read_err(
                "须为 FeatureCollection，每个网格一个 Polygon 要素".into(),
            ));
        };
        Ok(GridsImport {
            features: fc.features,
            stored: HashMap::new(),
            county_name: None,
            seqs: Seqs::new(0),
        })
    }

    fn load_stored(&mut self, db: &mut dyn Sql, ctx: &Ctx<'_>) -> Result<(), DataError> {
        let (clause, args) = ctx.scope.clause(1);
        for r in db.query(
            &format!(
                "SELECT id, kind, grid_id, grid_code, parent_id, data, meta, version, created_at
                 FROM entities WHERE kind = 'GRID' AND {clause}"
            ),
            &args,
        )? {
            let e = entity_from_row(&r)?;
            self.county_name = self.county_name.take().or_else(|| {
                e.data
                    .get("county_name")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            });
            self.stored.insert(e.grid_code.clone(), e);
        }
        Ok(())
    }

    /// One feature: its code, boundary and names checked, the grid it makes or changes.
    fn feature(
        &self,
        ctx: &Ctx<'_>,
        row: usize,
        f: &geojson::Feature,
        seen: &mut HashMap<String, usize>,
        errs: &mut RowErrors,
    ) -> Result<Option<Write>, DataError> {
        let before = errs.errors.len();
        let props = f.properties.clone().unwrap_or_default();
        let Some((code_key, code)) = prop(&props, &["code", "grid_code", "网格编码"]) else {
            errs.push(row, "properties.code", "须填写网格编码（15 位数字）");
            return Ok(None);
        };
        let field = format!("properties.{code_key}");
        if let Err(e) = GridCode::parse(&code) {
            errs.push(
                row,
                &field,
                format!("「{code}」不是网格编码，须为 15 位数字 ({e})"),
            );
            return Ok(None);
        }
        if !ctx.scope.covers(&code) {
            errs.push(
                row,
                &field,
                format!("网格 {code} 不在你的管辖范围（{}）内", ctx.actor.scope_code),
            );
            return Ok(None);
        }
        if let Some(r) = seen.insert(code.clone(), row) {
            errs.push(
                row,
                &field,
                format!("网格 {code} 已是第 {r} 个要素，请删去重复的一个"),
            );
        }
        let boundary = boundary(row, f.geometry.as_ref(), errs);
        let name = prop(&props, &["name", "网格名称", "名称"]).map(|p| p.1);
        let village = prop(&props, &["village", "village_name", "村", "村社区"]).map(|p| p.1);
        let town = prop(&props, &["town", "town_name", "乡镇", "镇街"]).map(|p| p.1);
        let county = prop(&props, &["county", "county_name", "区县"]).map(|p| p.1);
        let old = self.stored.get(&code);
        let mut grid: Grid = match old {
            Some(e) => {
                serde_json::from_value(Value::Object(e.data.clone())).map_err(super::internal)?
            }
            None => {
                for (v, what) in [(&name, "name"), (&village, "village"), (&town, "town")] {
                    if v.is_none() {
                        errs.push(
                            row,
                            format!("properties.{what}"),
                            format!("新网格须填写（{code} 尚未登记）"),
                        );
                    }
                }
                if county.is_none() && self.county_name.is_none() {
                    errs.push(row, "properties.county", "全县第一个网格须填写区县名称");
                }
                Grid {
                    id: new_id(),
                    code: GridCode::parse(&code).expect("checked above"),
                    name: String::new(),
                    village_name: String::new(),
                    town_name: String::new(),
                    county_name: String::new(),
                    boundary: geo::Polygon::new(geo::LineString::new(vec![]), vec![]),
                }
            }
        };
        if errs.errors.len() > before {
            return Ok(None);
        }
        let Some(boundary) = boundary else {
            return Ok(None);
        };
        grid.boundary = boundary;
        if let Some(n) = name {
            grid.name = n;
        }
        if let Some(v) = village {
            grid.village_name = v;
        }
        if let Some(t) = town {
            grid.town_name = t;
        }
        if let Some(c) = county {
            grid.county_name = c;
        } else if old.is_none() {
            grid.county_name = self.county_name.clone().unwrap_or_default();
        }
        let data = match serde_json::to_value(&grid).map_err(super::internal)? {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Ok(Some(Write {
            row: Some(row),
            kind: EntityKind::Grid,
            id: grid.id,
            grid_id: grid.id,
            grid_code: code,
            parent_id: None,
            data: Payload::Map(data),
        }))
    }
}

/// A feature's boundary: a valid polygon, or the problem reported.
fn boundary(
    row: usize,
    geometry: Option<&geojson::Geometry>,
    errs: &mut RowErrors,
) -> Option<geo::Polygon> {
    let Some(g) = geometry else {
        errs.push(row, "geometry", "缺少边界：每个网格须有边界多边形");
        return None;
    };
    match polygon_from_geometry(g) {
        Err(e) => {
            errs.push(row, "geometry", format!("边界须为多边形 ({e})"));
            None
        }
        Ok(p) => match p.check_validation() {
            Err(e) => {
                errs.push(
                    row,
                    "geometry",
                    format!("边界不是有效的多边形（如边线自相交），请在 GIS 软件中修正 ({e})"),
                );
                None
            }
            Ok(()) => Some(p),
        },
    }
}

impl Importer for GridsImport {
    type Row = GridRow;
    type Unit = Write;

    fn total(&self) -> usize {
        self.features.len()
    }

    fn read(
        &mut self,
        db: &mut dyn Sql,
        ctx: &Ctx<'_>,
        errs: &mut RowErrors,
        bar: &mut Bar<'_>,
    ) -> Result<Vec<GridRow>, DataError> {
        self.load_stored(db, ctx)?;
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut rows = Vec::new();
        for (i, f) in self.features.iter().enumerate() {
            bar.checked(i);
            let row = i + 1;
            if let Some(write) = self.feature(ctx, row, f, &mut seen, errs)? {
                rows.push(GridRow { row, write });
            }
        }
        Ok(rows)
    }

    fn plan(
        &mut self,
        _db: &mut dyn Sql,
        _ctx: &Ctx<'_>,
        rows: Vec<GridRow>,
        _errs: &mut RowErrors,
        _bar: &mut Bar<'_>,
    ) -> Result<Vec<Planned<Write>>, DataError> {
        self.seqs = Seqs::new(rows.len());
        Ok(rows
            .into_iter()
            .map(|r| Planned {
                rows: vec![r.row],
                unit: r.write,
            })
            .collect())
    }

    fn write(
        &mut self,
        db: &mut dyn Sql,
        ctx: &Ctx<'_>,
        w: Write,
        good: &[usize],
        _bad: &BTreeSet<usize>,
        _report: &mut ImportReport,
    ) -> Result<(usize, usize), DataError> {
        let old = self.stored.get(&w.grid_code);
        let (c, u) = write_entities(db, ctx, &mut self.seqs, &[(&w, old)])?;
        if c + u > 0 {
            repo::audit(
                db,
                ctx.now,
                &ctx.actor.username,
                None,
                if c > 0 {
                    "IMPORT_GRID_CREATE"
                } else {
                    "IMPORT_GRID_BOUNDARY"
                },
                Some(EntityKind::Grid),
                Some(w.id),
                Some(format!(
                    "{} feature {}: grid {}",
                    ctx.file, good[0], w.grid_code
                )),
            )?;
        }
        Ok((c, u))
    }
}
