//! Exports: the XLSX read back with calamine, masking, scope, audit, CSV for Excel.

use calamine::{Data, Reader};
use gridwalk::domain::codes::Coded;
use gridwalk::domain::validate::{mask_id, mask_phone};
use gridwalk::server::data::{
    self, Cell, DataError, ImportKind, Mode, PEOPLE_HEADER, RecordFilter, Sheet,
};
use serde_json::Value;

use super::{Backend, TestDb, now, on_both};

/// The first worksheet's rows as text.
fn read_back(bytes: &[u8]) -> Vec<Vec<String>> {
    let mut wb = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes.to_vec()))
        .expect("the export opens");
    let range = wb.worksheet_range_at(0).unwrap().unwrap();
    range
        .rows()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Data::String(s) => s.clone(),
                    Data::Empty => String::new(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

/// People stored in a village, by person id: (id number, phone).
fn people_of(t: &TestDb, prefix: &str) -> std::collections::HashMap<String, (Value, Value)> {
    let p = format!("{prefix}%");
    t.db.read(move |tx| {
        tx.query(
            "SELECT id, data FROM entities WHERE kind = 'PERSON' AND grid_code LIKE $1",
            &[p.into()],
        )
    })
    .unwrap()
    .into_iter()
    .map(|r| {
        let d: Value = serde_json::from_str(r[1].str().unwrap()).unwrap();
        (
            r[0].string().unwrap(),
            (d["id_number"].clone(), d["phone"].clone()),
        )
    })
    .collect()
}

fn people_export_reads_back_masked_and_scoped(backend: Backend) {
    let t = TestDb::new(backend, true);
    let village = t.county.villages[0].code.clone();
    let secretary = t.user("secretary");
    let sheet =
        t.db.tx(|tx| data::export_people(tx, &secretary, false, now()))
            .unwrap();
    let bytes = data::to_xlsx(&[sheet]).unwrap();
    let rows = read_back(&bytes);
    assert_eq!(
        rows[0],
        PEOPLE_HEADER
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    );
    let stored = people_of(&t, &village);
    assert!(!stored.is_empty());
    assert_eq!(
        rows.len() - 1,
        stored.len(),
        "every person of the village, no one else"
    );
    let col = |name: &str| PEOPLE_HEADER.iter().position(|h| *h == name).unwrap();
    let (id_col, phone_col, pid_col, grid_col) = (
        col("身份证号"),
        col("联系电话"),
        col("人员ID"),
        col("网格编码"),
    );
    let mut phones = 0;
    for r in &rows[1..] {
        assert!(
            r[grid_col].starts_with(&village),
            "{:?} is outside the scope",
            r[grid_col]
        );
        let (id, phone) = &stored[&r[pid_col]];
        let id = id.as_str().unwrap();
        assert_eq!(r[id_col], mask_id(id));
        assert!(r[id_col].contains("**********") && r[id_col] != id);
        if let Some(p) = phone.as_str() {
            assert_eq!(
                r.get(phone_col).map(String::as_str),
                Some(mask_phone(p).as_str())
            );
            assert!(
                !r.iter().any(|c| c == p),
                "no full phone anywhere in the row"
            );
            phones += 1;
        }
    }
    assert!(phones > 0);
    // Unmasked: an administrator only, and audited.
    assert!(matches!(
        t.db.tx(|tx| data::export_people(tx, &secretary, true, now())),
        Err(DataError::Forbidden(_))
    ));
    let admin = t.user("admin");
    let sheet =
        t.db.tx(|tx| data::export_people(tx, &admin, true, now()))
            .unwrap();
    let all = people_of(&t, "");
    assert_eq!(sheet.rows.len(), all.len());
    let full = sheet
        .rows
        .iter()
        .filter(|r| matches!(&r[id_col], Cell::Text(s) if !s.contains('*')))
        .count();
    assert_eq!(full, all.len());
    assert_eq!(t.count("SELECT count(*) FROM audit WHERE action = 'EXPORT_PEOPLE_UNMASKED' AND username = 'admin'"), 1);
    assert_eq!(
        t.count(
            "SELECT count(*) FROM audit WHERE action = 'EXPORT_PEOPLE' AND username = 'secretary'"
        ),
        1
    );
    // Workers export nothing.
    let worker = t.user("worker-a");
    assert!(matches!(
        t.db.tx(|tx| data::export_people(tx, &worker, false, now())),
        Err(DataError::Forbidden(_))
    ));

    // An unmasked export is an import file: importing it back changes nothing.
    let csv = data::to_csv(&sheet).unwrap();
    let r = t
        .import(
            "admin",
            ImportKind::Households,
            "people.csv",
            &csv,
            Mode::AllOrNothing,
        )
        .unwrap();
    assert!(r.is_clean(), "{:#?}", &r.errors[..r.errors.len().min(5)]);
    assert_eq!((r.imported, r.created, r.updated), (all.len(), 0, 0));
    // So is a masked one: a masked value stands for the stored value it masks.
    let masked =
        t.db.tx(|tx| data::export_people(tx, &secretary, false, now()))
            .unwrap();
    let r = t
        .import(
            "secretary",
            ImportKind::Households,
            "people.csv",
            &data::to_csv(&masked).unwrap(),
            Mode::AllOrNothing,
        )
        .unwrap();
    assert!(r.is_clean(), "{:#?}", &r.errors[..r.errors.len().min(5)]);
    assert_eq!((r.created, r.updated), (0, 0));
}
on_both!(people_export_reads_back_masked_and_scoped);

fn records_export_reads_back(backend: Backend) {
    let t = TestDb::new(backend, true);
    let village = t.county.villages[0].code.clone();
    let secretary = t.user("secretary");
    let sheet =
        t.db.tx(|tx| data::export_records(tx, &secretary, &RecordFilter::default(), now()))
            .unwrap();
    let n = t.count(&format!(
        "SELECT count(*) FROM entities WHERE grid_code LIKE '{village}%' AND kind IN
         ('OPINION','DISPUTE','PATROL','HAZARD','SPECIAL_POP','EMERGENCY','PUBLICITY','LIVELIHOOD','OTHER')"
    ));
    assert!(n > 0);
    let rows = read_back(&data::to_xlsx(std::slice::from_ref(&sheet)).unwrap());
    assert_eq!(rows[0][..5], ["编号", "类型", "类别", "状态", "紧急程度"]);
    assert_eq!(rows.len() as i64 - 1, n);
    let statuses: Vec<&str> = gridwalk::domain::lifecycle::Status::ALL
        .iter()
        .map(|s| s.zh())
        .collect();
    for r in &rows[1..] {
        assert!(
            statuses.contains(&r[3].as_str()),
            "status {:?} in Chinese",
            r[3]
        );
        assert!(r[5].starts_with(&village));
    }
    // One type only.
    let hazards =
        t.db.tx(|tx| {
            data::export_records(
                tx,
                &secretary,
                &RecordFilter {
                    kind: Some(gridwalk::domain::model::EntityKind::Hazard),
                    ..Default::default()
                },
                now(),
            )
        })
        .unwrap();
    assert!(
        hazards
            .rows
            .iter()
            .all(|r| r[1] == Cell::Text("安全隐患".into()))
    );
    assert!(hazards.rows.len() < sheet.rows.len());
}
on_both!(records_export_reads_back);

#[test]
fn csv_has_a_bom_and_sheets_survive_odd_names() {
    let s = Sheet {
        name: "统计/按网格:2026".into(),
        header: vec!["网格".into(), "件数".into(), "日期".into()],
        rows: vec![vec![
            Cell::Text("山下村第1网格, \"东\"".into()),
            Cell::Int(12),
            Cell::Date(chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()),
        ]],
    };
    let csv = data::to_csv(&s).unwrap();
    assert!(csv.starts_with(b"\xEF\xBB\xBF"));
    let text = String::from_utf8(csv[3..].to_vec()).unwrap();
    assert_eq!(
        text,
        "网格,件数,日期\n\"山下村第1网格, \"\"东\"\"\",12,2026-11-29\n"
    );
    let rows = read_back(&data::to_xlsx(&[s.clone(), s]).unwrap());
    assert_eq!(rows[1][0], "山下村第1网格, \"东\"");
    assert_eq!(rows[1][1], "12");
}

/// A worker's description that Excel would take for a formula comes out as text: a leading
/// `'` in CSV and XLSX, a string cell (never a formula) in XLSX.
#[cfg(feature = "client")]
fn formulas_a_worker_typed_are_neutralised(backend: Backend) {
    let t = TestDb::new(backend, true);
    let grid = &t.county.grids[0].grid;
    let mut h = crate::sync::e2e_hazard(grid.id);
    let typed = "=HYPERLINK(\"http://x\",\"y\")";
    h.description = typed.into();
    let id = h.common.id;
    let code = grid.code.as_str().to_owned();
    t.db.tx(|tx| {
        let seq = gridwalk::server::repo::reserve_seqs(tx, 1)?;
        gridwalk::server::records::import_entity(
            tx,
            seq,
            gridwalk::domain::model::EntityKind::Hazard,
            id,
            grid.id,
            &code,
            None,
            serde_json::to_value(&h).unwrap(),
            now(),
            now(),
        )
    })
    .unwrap();
    let secretary = t.user("secretary");
    let sheet =
        t.db.tx(|tx| data::export_records(tx, &secretary, &RecordFilter::default(), now()))
            .unwrap();
    let summary = sheet.header.iter().position(|h| h == "摘要").unwrap();
    let row = |rows: &[Vec<String>]| {
        rows.iter()
            .find(|r| r[0] == id.to_string())
            .expect("the record is exported")[summary]
            .clone()
    };
    let neutralised = format!("'{typed}");

    let csv = data::to_csv(&sheet).unwrap();
    let rows: Vec<Vec<String>> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(&csv[3..])
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    assert_eq!(row(&rows), neutralised);

    let xlsx = data::to_xlsx(std::slice::from_ref(&sheet)).unwrap();
    assert_eq!(row(&read_back(&xlsx)), neutralised);
    let mut wb = calamine::open_workbook_auto_from_rs(std::io::Cursor::new(xlsx)).unwrap();
    let formulas = wb.worksheet_formula(&wb.sheet_names()[0].clone()).unwrap();
    assert!(
        formulas.used_cells().all(|(_, _, f)| f.is_empty()),
        "no formula in the workbook"
    );
}
#[cfg(feature = "client")]
on_both!(formulas_a_worker_typed_are_neutralised);
