//! Imports: the row report, all-or-nothing and valid-rows-only, re-imports that update,
//! scope, grid boundaries and accounts.

use gridwalk::server::data::{DataError, ImportKind, Mode};
use gridwalk::server::repo;
use rust_xlsxwriter::Workbook;
use serde_json::Value;

use super::{Backend, TestDb, id_number, on_both};

/// An XLSX of people: Chinese and English headers mixed, as clerks' sheets are.
fn xlsx(rows: &[Vec<&str>]) -> Vec<u8> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    let header = [
        "序号",
        "网格编码",
        "门牌号",
        "地址",
        "姓名",
        "relation",
        "性别",
        "id_number",
        "联系电话",
        "标签",
    ];
    for (c, h) in header.iter().enumerate() {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    for (r, row) in rows.iter().enumerate() {
        ws.write_number(r as u32 + 1, 0, (r + 1) as f64).unwrap();
        for (c, v) in row.iter().enumerate() {
            if !v.is_empty() {
                ws.write_string(r as u32 + 1, c as u16 + 1, *v).unwrap();
            }
        }
    }
    wb.save_to_buffer().unwrap()
}

fn person_count(t: &TestDb, id_number: &str) -> i64 {
    t.count(&format!(
        "SELECT count(*) FROM entities WHERE kind = 'PERSON' AND data LIKE '%\"id_number\":\"{id_number}\"%'"
    ))
}

fn xlsx_with_bad_rows_reports_each_and_imports_only_what_is_allowed(backend: Backend) {
    let t = TestDb::new(backend, true);
    let g0 = t.grid(0);
    let (a1, a2, c1) = (
        id_number("19800102", 11),
        id_number("19820304", 22),
        id_number("19500607", 31),
    );
    let mut bad_check = id_number("19700101", 41);
    bad_check.replace_range(17.., if bad_check.ends_with('1') { "2" } else { "1" });
    let rows = vec![
        vec![
            &g0[..],
            "901",
            "测试村1组901号",
            "张建国",
            "户主",
            "男",
            &a1,
            "13800138000",
            "低保",
        ],
        vec![
            &g0[..],
            "901",
            "测试村1组901号",
            "李秀英",
            "配偶",
            "女",
            &a2,
            "",
            "",
        ],
        vec![
            &g0[..],
            "902",
            "测试村1组902号",
            "王五",
            "户主",
            "男",
            &bad_check,
            "",
            "",
        ],
        vec![
            "361003999999001",
            "903",
            "测试村1组903号",
            "赵六",
            "户主",
            "男",
            "",
            "",
            "",
        ],
        vec![
            &g0[..],
            "904",
            "测试村1组904号",
            "钱七",
            "本人",
            "女",
            "",
            "12345",
            "富豪",
        ],
        vec![
            &g0[..],
            "905",
            "测试村1组905号",
            "孙八",
            "户主",
            "",
            &c1,
            "",
            "独居老人、高龄",
        ],
    ];
    let file = xlsx(&rows);
    let people_before = t.count("SELECT count(*) FROM entities WHERE kind = 'PERSON'");
    let seq_before = t.count("SELECT value FROM counters WHERE name = 'change_seq'");

    // All or nothing: the report names each bad row and field; nothing is written.
    let r = t
        .import(
            "admin",
            ImportKind::Households,
            "people.xlsx",
            &file,
            Mode::AllOrNothing,
        )
        .unwrap();
    assert_eq!((r.rows, r.imported, r.skipped), (6, 0, 6), "{r:#?}");
    let at = |row: usize, field: &str| {
        r.errors
            .iter()
            .find(|e| e.row == row && e.field == field)
            .unwrap_or_else(|| panic!("no error for row {row} {field}: {:#?}", r.errors))
            .reason
            .clone()
    };
    assert!(
        at(4, "id_number").contains("校验码不对"),
        "{}",
        at(4, "id_number")
    );
    assert!(at(5, "网格编码").contains("没有网格 361003999999001"));
    assert!(at(6, "联系电话").contains("12345"));
    assert!(at(6, "标签").contains("富豪"));
    assert!(
        r.errors.iter().all(|e| [4, 5, 6].contains(&e.row)),
        "only the bad rows are reported: {:#?}",
        r.errors
    );
    assert_eq!(
        t.count("SELECT count(*) FROM entities WHERE kind = 'PERSON'"),
        people_before
    );
    assert_eq!(
        t.count("SELECT value FROM counters WHERE name = 'change_seq'"),
        seq_before,
        "no sequence number was used"
    );
    assert_eq!(
        t.count("SELECT count(*) FROM audit WHERE action = 'IMPORT_REFUSED'"),
        1
    );

    // Valid rows only: the good rows are written, with new versions devices will pull.
    let r = t
        .import(
            "admin",
            ImportKind::Households,
            "people.xlsx",
            &file,
            Mode::ValidRowsOnly,
        )
        .unwrap();
    assert_eq!((r.rows, r.imported, r.skipped), (6, 3, 3), "{r:#?}");
    assert_eq!(r.created, 7, "two houses, two households, three people");
    for n in [&a1, &a2, &c1] {
        assert_eq!(person_count(&t, n), 1, "{n}");
    }
    assert_eq!(person_count(&t, &bad_check), 0);
    assert_eq!(
        t.count("SELECT count(*) FROM entities WHERE kind = 'PERSON'"),
        people_before + 3
    );
    // Sex and birth date come from the ID number; tags from their Chinese labels.
    let sun: Value = {
        let n = c1.clone();
        let rows =
            t.db.read(move |tx| {
                tx.query(
                    "SELECT data, version FROM entities WHERE kind = 'PERSON' AND data LIKE $1",
                    &[format!("%{n}%").into()],
                )
            })
            .unwrap();
        assert!(rows[0][1].i64().unwrap() > seq_before);
        serde_json::from_str(rows[0][0].str().unwrap()).unwrap()
    };
    assert_eq!(sun["sex"], "1");
    assert_eq!(sun["birth_date"], "1950-06-07");
    assert_eq!(
        sun["tags"],
        serde_json::json!(["ELDERLY_ALONE", "ELDERLY_HIGH_AGE"])
    );
    // The household's head is its 户主 row.
    let head_ok = t.count(&format!(
        "SELECT count(*) FROM entities h JOIN entities p ON p.parent_id = h.id
         WHERE h.kind = 'HOUSEHOLD' AND p.kind = 'PERSON' AND p.data LIKE '%{a1}%'
           AND h.data LIKE '%\"head_id\":\"' || p.id || '\"%'"
    ));
    assert_eq!(head_ok, 1);

    // Worker-a's phone pulls the new people of its grid.
    let worker = t.user("worker-a");
    let pulled = t
        .db
        .tx(|tx| gridwalk::server::records::pull(tx, &worker, None, seq_before, seq_before, 1000))
        .unwrap();
    let names: Vec<&str> = pulled
        .changes
        .iter()
        .filter_map(|c| c.data.get("name").and_then(Value::as_str))
        .collect();
    assert!(
        names.contains(&"张建国") && names.contains(&"孙八"),
        "{names:?}"
    );

    // The same file again: the same people, updated not duplicated; the bad rows still bad.
    let r = t
        .import(
            "admin",
            ImportKind::Households,
            "people.xlsx",
            &file,
            Mode::ValidRowsOnly,
        )
        .unwrap();
    assert_eq!((r.imported, r.created, r.updated), (3, 0, 0), "{r:#?}");
    assert_eq!(
        t.count("SELECT count(*) FROM entities WHERE kind = 'PERSON'"),
        people_before + 3
    );
}
on_both!(xlsx_with_bad_rows_reports_each_and_imports_only_what_is_allowed);

fn reimport_changes_only_what_changed(backend: Backend) {
    let t = TestDb::new(backend, true);
    let g = t.grid(1);
    let a = id_number("19900101", 51);
    let csv = |phone: &str, name: &str| {
        format!(
            "\u{feff}grid_code,household_no,address,name,relation,id_number,phone\n\
             {g},H1,测试村2组1号,{name},HEAD,{a},{phone}\n\
             {g},H1,测试村2组1号,周小明,子,,\n"
        )
    };
    let r = t
        .import(
            "admin",
            ImportKind::Households,
            "h.csv",
            csv("13912345678", "周大明").as_bytes(),
            Mode::AllOrNothing,
        )
        .unwrap();
    assert!(r.is_clean(), "{:#?}", r.errors);
    assert_eq!(
        (r.created, r.updated),
        (3, 0),
        "a household and two people, no house"
    );
    let seq = t.count("SELECT value FROM counters WHERE name = 'change_seq'");
    // Same again: nothing changes, no new versions.
    let r = t
        .import(
            "admin",
            ImportKind::Households,
            "h.csv",
            csv("13912345678", "周大明").as_bytes(),
            Mode::AllOrNothing,
        )
        .unwrap();
    assert_eq!((r.created, r.updated), (0, 0));
    assert_eq!(
        t.count("SELECT value FROM counters WHERE name = 'change_seq'"),
        seq
    );
    // A new phone and name for the head (matched by ID number); the son (no ID number) is
    // matched by name within the household.
    let r = t
        .import(
            "admin",
            ImportKind::Households,
            "h.csv",
            csv("13987654321", "周建明").as_bytes(),
            Mode::AllOrNothing,
        )
        .unwrap();
    assert_eq!((r.created, r.updated), (0, 1), "{r:#?}");
    let data: Value = {
        let a = a.clone();
        let row =
            t.db.read(move |tx| {
                tx.query_one(
                    "SELECT data, meta FROM entities WHERE kind = 'PERSON' AND data LIKE $1",
                    &[format!("%{a}%").into()],
                )
            })
            .unwrap();
        let meta: repo::EntityMeta = serde_json::from_str(row[1].str().unwrap()).unwrap();
        assert_eq!(meta.get("phone").by, "admin");
        assert!(
            meta.get("phone").version > seq,
            "the changed field has its own version"
        );
        assert!(
            meta.get("sex").version <= seq,
            "unchanged fields keep theirs"
        );
        serde_json::from_str(row[0].str().unwrap()).unwrap()
    };
    assert_eq!(data["phone"], "13987654321");
    assert_eq!(data["name"], "周建明");
    assert_eq!(
        t.count("SELECT count(*) FROM entities WHERE kind = 'PERSON' AND data LIKE '%周小明%'"),
        1
    );
}
on_both!(reimport_changes_only_what_changed);

fn scope_limits_imports(backend: Backend) {
    let t = TestDb::new(backend, true);
    let mine = t.grid(0);
    let other = t.grid(t.other_village_grid());
    let csv = format!(
        "网格编码,地址,姓名,与户主关系,性别\n{mine},本村1号,甲,户主,男\n{other},外村1号,乙,户主,女\n"
    );
    let r = t
        .import(
            "secretary",
            ImportKind::Households,
            "h.csv",
            csv.as_bytes(),
            Mode::AllOrNothing,
        )
        .unwrap();
    assert_eq!(r.imported, 0);
    assert_eq!(r.errors.len(), 1, "{:#?}", r.errors);
    assert_eq!(
        (r.errors[0].row, r.errors[0].field.as_str()),
        (3, "网格编码")
    );
    assert!(
        r.errors[0].reason.contains("不在你的管辖范围"),
        "{}",
        r.errors[0].reason
    );
    let r = t
        .import(
            "secretary",
            ImportKind::Households,
            "h.csv",
            csv.as_bytes(),
            Mode::ValidRowsOnly,
        )
        .unwrap();
    assert_eq!((r.imported, r.skipped), (1, 1));
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM entities WHERE kind = 'PERSON' AND grid_code = '{other}' AND data LIKE '%\"name\":\"乙\"%'"
        )),
        0
    );
    // Grid workers import nothing; only administrators import accounts.
    assert!(matches!(
        t.import(
            "worker-a",
            ImportKind::Households,
            "h.csv",
            csv.as_bytes(),
            Mode::ValidRowsOnly
        ),
        Err(DataError::Forbidden(_))
    ));
    assert!(matches!(
        t.import(
            "secretary",
            ImportKind::Accounts,
            "a.csv",
            b"username,display_name,role,scope_code\n",
            Mode::AllOrNothing
        ),
        Err(DataError::Forbidden(_))
    ));
    // A file type we do not read, and a header we do not know, are refused whole.
    let e = t
        .import(
            "admin",
            ImportKind::Households,
            "h.txt",
            csv.as_bytes(),
            Mode::AllOrNothing,
        )
        .unwrap_err();
    assert!(e.to_string().contains("不支持的文件类型"), "{e}");
    let e = t
        .import(
            "admin",
            ImportKind::Households,
            "h.csv",
            "网格编码,地址,姓名,与户主关系,年龄\n".as_bytes(),
            Mode::AllOrNothing,
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("第 E 列「年龄」不是可识别的列"),
        "{e}"
    );
}
on_both!(scope_limits_imports);

fn geojson_updates_a_boundary(backend: Backend) {
    let t = TestDb::new(backend, true);
    let g = &t.county.grids[0].grid;
    let (seq, before): (i64, Value) = {
        let code = g.code.as_str().to_owned();
        let r =
            t.db.read(move |tx| {
                tx.query_one(
                    "SELECT version, data FROM entities WHERE kind = 'GRID' AND grid_code = $1",
                    &[code.into()],
                )
            })
            .unwrap();
        (
            r[0].i64().unwrap(),
            serde_json::from_str(r[1].str().unwrap()).unwrap(),
        )
    };
    let c = geo::Centroid::centroid(&g.boundary).unwrap();
    let (x, y) = (c.x(), c.y());
    let square = serde_json::json!([[
        [x - 0.001, y - 0.001],
        [x + 0.001, y - 0.001],
        [x + 0.001, y + 0.001],
        [x - 0.001, y + 0.001],
        [x - 0.001, y - 0.001]
    ]]);
    let bowtie = serde_json::json!([[
        [x, y],
        [x + 0.001, y + 0.001],
        [x + 0.001, y],
        [x, y + 0.001],
        [x, y]
    ]]);
    let fc = |features: Vec<Value>| {
        serde_json::json!({"type": "FeatureCollection", "features": features}).to_string()
    };
    let feature = |props: Value, coords: &Value| serde_json::json!({"type": "Feature", "properties": props, "geometry": {"type": "Polygon", "coordinates": coords}});
    let file = fc(vec![
        feature(
            serde_json::json!({"code": g.code.as_str(), "name": "山下村第一网格"}),
            &square,
        ),
        feature(serde_json::json!({"网格编码": t.grid(1)}), &bowtie),
        feature(
            serde_json::json!({"code": format!("{}099", &g.code.as_str()[..12])}),
            &square,
        ),
    ]);
    let r = t
        .import(
            "admin",
            ImportKind::Grids,
            "grids.geojson",
            file.as_bytes(),
            Mode::AllOrNothing,
        )
        .unwrap();
    assert_eq!(r.imported, 0);
    let fields: Vec<(usize, &str)> = r.errors.iter().map(|e| (e.row, e.field.as_str())).collect();
    assert!(fields.contains(&(2, "geometry")), "{:#?}", r.errors);
    assert!(
        r.errors
            .iter()
            .find(|e| e.row == 2)
            .unwrap()
            .reason
            .contains("不是有效的多边形")
    );
    assert!(fields.contains(&(3, "properties.name")), "{:#?}", r.errors);
    assert!(
        fields.contains(&(3, "properties.village")),
        "{:#?}",
        r.errors
    );

    let r = t
        .import(
            "admin",
            ImportKind::Grids,
            "grids.geojson",
            file.as_bytes(),
            Mode::ValidRowsOnly,
        )
        .unwrap();
    assert_eq!((r.imported, r.updated, r.created), (1, 1, 0), "{r:#?}");
    let code = g.code.as_str().to_owned();
    let row =
        t.db.read(move |tx| {
            tx.query_one(
                "SELECT version, data, meta FROM entities WHERE kind = 'GRID' AND grid_code = $1",
                &[code.into()],
            )
        })
        .unwrap();
    assert!(row[0].i64().unwrap() > seq);
    let after: Value = serde_json::from_str(row[1].str().unwrap()).unwrap();
    assert_ne!(after["boundary"], before["boundary"]);
    assert_eq!(after["name"], "山下村第一网格");
    assert_eq!(after["id"], before["id"], "the same grid, updated");
    assert_eq!(after["village_name"], before["village_name"]);
    let meta: repo::EntityMeta = serde_json::from_str(row[2].str().unwrap()).unwrap();
    assert_eq!(meta.get("boundary").by, "admin");
    // A secretary may not touch another village's grid.
    let other = t.grid(t.other_village_grid());
    let r = t
        .import(
            "secretary",
            ImportKind::Grids,
            "g.json",
            fc(vec![feature(serde_json::json!({"code": other}), &square)]).as_bytes(),
            Mode::AllOrNothing,
        )
        .unwrap();
    assert!(
        r.errors[0].reason.contains("不在你的管辖范围"),
        "{:#?}",
        r.errors
    );
}
on_both!(geojson_updates_a_boundary);

fn accounts_import_creates_updates_and_generates_passwords(backend: Backend) {
    let t = TestDb::new(backend, true);
    let village = t.county.villages[0].code.clone();
    let (g0, g1) = (t.grid(0), t.grid(1));
    let csv = format!(
        "用户名,姓名,角色,范围编码,网格,初始密码\n\
         w-new,新网格员,网格员,{village},{g0}、{g1},\n\
         s-new,新书记,SECRETARY,{village},,secret-pass-1\n\
         Bad Name,坏,网格员,{village},,\n\
         w-two,二号,网格员,{village},{village}099,\n"
    );
    let r = t
        .import(
            "admin",
            ImportKind::Accounts,
            "accounts.csv",
            csv.as_bytes(),
            Mode::ValidRowsOnly,
        )
        .unwrap();
    assert_eq!((r.imported, r.created), (2, 2), "{r:#?}");
    assert!(r.errors.iter().any(|e| e.row == 4 && e.field == "用户名"));
    assert!(
        r.errors
            .iter()
            .any(|e| e.row == 4 && e.field == "网格" && e.reason.contains("至少填写一个网格"))
    );
    assert!(
        r.errors
            .iter()
            .any(|e| e.row == 5 && e.reason.contains(&format!("没有网格 {village}099")))
    );
    assert_eq!(r.passwords.len(), 1);
    assert_eq!(r.passwords[0].username, "w-new");
    let (u, hash) =
        t.db.read(|tx| repo::user_by_name(tx, "w-new"))
            .unwrap()
            .unwrap();
    assert!(gridwalk::server::auth::verify_password(
        &r.passwords[0].password,
        &hash
    ));
    assert_eq!(u.grids.len(), 2);
    // Again, with one grid fewer and a new name: updated, no new password.
    let csv2 =
        format!("username,display_name,role,scope_code,grids\nw-new,改名,WORKER,{village},{g1}\n");
    let r = t
        .import(
            "admin",
            ImportKind::Accounts,
            "accounts.csv",
            csv2.as_bytes(),
            Mode::AllOrNothing,
        )
        .unwrap();
    assert_eq!(
        (r.created, r.updated, r.passwords.len()),
        (0, 1, 0),
        "{r:#?}"
    );
    let u = t.user("w-new");
    assert_eq!(u.display_name, "改名");
    assert_eq!(
        u.grids.iter().map(|g| g.1.clone()).collect::<Vec<_>>(),
        vec![g1]
    );
    // A village office's relay: its village's 12 digits, no grids.
    let town = &village[..9];
    let csv3 = format!(
        "用户名,姓名,角色,范围编码,网格\n\
         office-1,村办中转站,中转站,{village},\n\
         office-2,镇中转站,RELAY,{town},\n\
         office-3,带网格,村办中转站,{village},{g0}\n"
    );
    let r = t
        .import(
            "admin",
            ImportKind::Accounts,
            "accounts.csv",
            csv3.as_bytes(),
            Mode::ValidRowsOnly,
        )
        .unwrap();
    assert_eq!(r.created, 1, "{r:#?}");
    assert_eq!(t.user("office-1").role, gridwalk::wire::Role::Relay);
    assert!(
        r.errors
            .iter()
            .any(|e| e.row == 3 && e.field == "范围编码" && e.reason.contains("12 位"))
    );
    assert!(r.errors.iter().any(|e| e.row == 4 && e.field == "网格"));
}
on_both!(accounts_import_creates_updates_and_generates_passwords);

#[test]
fn an_id_number_stored_as_a_number_is_explained() {
    let t = TestDb::new(Backend::Sqlite, true);
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    for (c, h) in [
        "网格编码",
        "地址",
        "姓名",
        "与户主关系",
        "身份证号",
        "联系电话",
    ]
    .iter()
    .enumerate()
    {
        ws.write_string(0, c as u16, *h).unwrap();
    }
    let id = id_number("19800102", 11);
    ws.write_string(1, 0, t.grid(0)).unwrap();
    ws.write_string(1, 1, "测试村1号").unwrap();
    ws.write_string(1, 2, "张三").unwrap();
    ws.write_string(1, 3, "户主").unwrap();
    ws.write_number(1, 4, id[..17].parse::<f64>().unwrap() * 10.0)
        .unwrap();
    // A phone typed as a number keeps its 11 digits.
    ws.write_number(1, 5, 13800138000.0).unwrap();
    let r = t
        .import(
            "admin",
            ImportKind::Households,
            "p.xlsx",
            &wb.save_to_buffer().unwrap(),
            Mode::AllOrNothing,
        )
        .unwrap();
    assert_eq!(r.errors.len(), 1, "{:#?}", r.errors);
    assert_eq!(r.errors[0].field, "身份证号");
    assert!(
        r.errors[0].reason.contains("设为文本格式"),
        "{}",
        r.errors[0].reason
    );
}

/// An 18-digit ID number with a wrong check digit and no sex given is reported for its check
/// digit, the real reason, and not as a missing sex.
#[test]
fn a_wrong_check_digit_is_the_reason_given_not_a_missing_sex() {
    let t = TestDb::new(Backend::Sqlite, true);
    let mut bad = id_number("19800102", 11);
    bad.replace_range(17.., if bad.ends_with('1') { "2" } else { "1" });
    let csv = format!(
        "网格编码,地址,姓名,与户主关系,性别,身份证号\n{},测试村2号,张三,户主,,{bad}\n",
        t.grid(0)
    );
    let r = t
        .import(
            "admin",
            ImportKind::Households,
            "p.csv",
            csv.as_bytes(),
            Mode::AllOrNothing,
        )
        .unwrap();
    assert_eq!(r.errors.len(), 1, "{:#?}", r.errors);
    assert_eq!(r.errors[0].field, "身份证号");
    assert!(r.errors[0].reason.contains("校验码不对"), "{:#?}", r.errors);
}

#[test]
fn templates_are_files_the_importer_accepts() {
    let t = TestDb::new(Backend::Sqlite, true);
    for (kind, name) in [
        (ImportKind::Households, "t.xlsx"),
        (ImportKind::Accounts, "t.xlsx"),
    ] {
        let sheet = kind.template().unwrap();
        let bytes = gridwalk::server::data::to_xlsx(&[sheet]).unwrap();
        let r = t
            .import("admin", kind, name, &bytes, Mode::AllOrNothing)
            .unwrap();
        assert_eq!((r.rows, r.errors.len()), (0, 0), "{kind:?}");
    }
    assert!(ImportKind::Grids.template().is_none());
}
