//! Importing grid boundaries: a GeoJSON FeatureCollection, one Polygon feature per grid with
//! its 15-digit code in `properties.code` (or `grid_code`, `网格编码`). A stored grid gets the
//! new boundary (and name, when given); a new code makes a new grid, which needs `name`,
//! `village` and `town` (and `county`, unless the county already has grids).

use std::collections::HashMap;

use geo::Validation;
use serde_json::{Map, Value};

use super::households::entity_from_row;
use super::table::RowErrors;
use super::{Bar, Ctx, DataError, ImportReport, Mode, Payload, Seqs, Write, write_entities};
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

pub(super) fn import(
    db: &mut dyn Sql,
    ctx: &Ctx<'_>,
    bytes: &[u8],
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportReport, DataError> {
    let read_err = |reason: String| DataError::Read {
        file: ctx.file.to_owned(),
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
    let total = fc.features.len();
    let mut bar = Bar::new(progress, total);
    bar.report(0);

    // The stored grids of the actor's scope, by code.
    let (clause, args) = ctx.scope.clause(1);
    let mut stored: HashMap<String, repo::Entity> = HashMap::new();
    let mut county_name = None;
    for r in db.query(
        &format!(
            "SELECT id, kind, grid_id, grid_code, parent_id, data, meta, version, created_at
             FROM entities WHERE kind = 'GRID' AND {clause}"
        ),
        &args,
    )? {
        let e = entity_from_row(&r)?;
        county_name = county_name.or_else(|| {
            e.data
                .get("county_name")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        stored.insert(e.grid_code.clone(), e);
    }

    let mut errs = RowErrors::default();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut planned: Vec<(usize, Write)> = Vec::new();
    for (i, f) in fc.features.iter().enumerate() {
        bar.checked(i);
        let row = i + 1;
        let before = errs.errors.len();
        let props = f.properties.clone().unwrap_or_default();
        let Some((code_key, code)) = prop(&props, &["code", "grid_code", "网格编码"]) else {
            errs.push(row, "properties.code", "须填写网格编码（15 位数字）");
            continue;
        };
        let field = format!("properties.{code_key}");
        if let Err(e) = GridCode::parse(&code) {
            errs.push(
                row,
                &field,
                format!("「{code}」不是网格编码，须为 15 位数字 ({e})"),
            );
            continue;
        }
        if !ctx.scope.covers(&code) {
            errs.push(
                row,
                &field,
                format!("网格 {code} 不在你的管辖范围（{}）内", ctx.actor.scope_code),
            );
            continue;
        }
        if let Some(r) = seen.insert(code.clone(), row) {
            errs.push(
                row,
                &field,
                format!("网格 {code} 已是第 {r} 个要素，请删去重复的一个"),
            );
        }
        let boundary = match &f.geometry {
            None => {
                errs.push(row, "geometry", "缺少边界：每个网格须有边界多边形");
                None
            }
            Some(g) => {
                match polygon_from_geometry(g) {
                    Err(e) => {
                        errs.push(row, "geometry", format!("边界须为多边形 ({e})"));
                        None
                    }
                    Ok(p) => match p.check_validation() {
                        Err(e) => {
                            errs.push(row, "geometry", format!("边界不是有效的多边形（如边线自相交），请在 GIS 软件中修正 ({e})"));
                            None
                        }
                        Ok(()) => Some(p),
                    },
                }
            }
        };
        let name = prop(&props, &["name", "网格名称", "名称"]).map(|p| p.1);
        let village = prop(&props, &["village", "village_name", "村", "村社区"]).map(|p| p.1);
        let town = prop(&props, &["town", "town_name", "乡镇", "镇街"]).map(|p| p.1);
        let county = prop(&props, &["county", "county_name", "区县"]).map(|p| p.1);
        let old = stored.get(&code);
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
                if county.is_none() && county_name.is_none() {
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
            continue;
        }
        let Some(boundary) = boundary else { continue };
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
            grid.county_name = county_name.clone().unwrap_or_default();
        }
        let data = match serde_json::to_value(&grid).map_err(super::internal)? {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        planned.push((
            row,
            Write {
                row: Some(row),
                kind: EntityKind::Grid,
                id: grid.id,
                grid_id: grid.id,
                grid_code: code,
                parent_id: None,
                data: Payload::Map(data),
            },
        ));
    }

    let mut report = ImportReport {
        rows: total,
        errors: errs.errors,
        ..Default::default()
    };
    if !report.errors.is_empty() && ctx.mode == Mode::AllOrNothing {
        report.skipped = total;
        bar.done();
        return Ok(report);
    }
    let bad: std::collections::BTreeSet<usize> = report.errors.iter().map(|e| e.row).collect();
    let mut seqs = Seqs::new(planned.len());
    for (n, (row, w)) in planned.iter().enumerate() {
        if bad.contains(row) {
            continue;
        }
        let old = stored.get(&w.grid_code);
        let (c, u) = write_entities(db, ctx, &mut seqs, &[(w, old)])?;
        report.created += c;
        report.updated += u;
        report.imported += 1;
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
                Some(format!("{} feature {row}: grid {}", ctx.file, w.grid_code)),
            )?;
        }
        bar.written(n + 1);
    }
    report.skipped = total - report.imported;
    bar.done();
    Ok(report)
}
