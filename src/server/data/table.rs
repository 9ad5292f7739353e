//! Reading a sheet (CSV or the first worksheet of an XLSX) into rows of text, finding columns
//! by their Chinese or English names, and reading coded values by code or label.

use std::collections::BTreeMap;

use calamine::{Data, Reader};
use chrono::NaiveDate;

use super::{DataError, RowError};
use crate::domain::codes::Coded;

/// A sheet as text: the header and each data row with its row number as the spreadsheet
/// shows it (the header is row 1).
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub header: Vec<String>,
    pub rows: Vec<(usize, Vec<String>)>,
}

fn read_err(file: &str, reason: impl std::fmt::Display) -> DataError {
    DataError::Read {
        file: file.to_owned(),
        reason: reason.to_string(),
    }
}

/// UTF-8 (with or without a byte-order mark) or, failing that, GB18030 as Excel on Chinese
/// Windows saves "CSV".
fn decode(bytes: &[u8]) -> String {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => encoding_rs::GB18030.decode(bytes).0.into_owned(),
    }
}

/// A cell's text with the `'` our exports put before text that starts like a formula taken off
/// again ([`super::export::neutralise`]), so an exported sheet imports back as it was.
pub fn unguard(s: &str) -> String {
    match s.strip_prefix('\'') {
        Some(rest) if rest.starts_with(super::export::FORMULA_STARTS) => rest.trim().to_owned(),
        _ => s.to_owned(),
    }
}

pub fn read_csv(file: &str, bytes: &[u8]) -> Result<Table, DataError> {
    let text = decode(bytes);
    let mut r = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut header = None;
    let mut rows = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| read_err(file, e))?;
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        let cells: Vec<String> = rec.iter().map(|c| unguard(c.trim())).collect();
        if cells.iter().all(String::is_empty) {
            continue;
        }
        if header.is_none() {
            header = Some(cells);
        } else {
            rows.push((line, cells));
        }
    }
    let header = header.ok_or_else(|| read_err(file, "the file is empty"))?;
    Ok(Table { header, rows })
}

/// The text of a cell. Numbers keep their digits (`13812345678`, not `1.38e10`). A number of
/// 16 digits or more has already lost digits in Excel (it keeps 15), so it is given as Excel
/// shows it (`1.1010519491231E17`), which [`lost_digits`] recognises.
fn cell_text(d: &Data) -> String {
    match d {
        Data::Empty => String::new(),
        Data::String(s) => unguard(s.trim()),
        Data::Int(i) if i.unsigned_abs() >= 1_000_000_000_000_000 => format!("{:E}", *i as f64),
        Data::Int(i) => i.to_string(),
        Data::Float(f) if f.abs() >= 1e15 => format!("{f:E}"),
        Data::Float(f) if f.fract() == 0.0 => format!("{f:.0}"),
        Data::Float(f) => f.to_string(),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(dt) => match dt.as_datetime() {
            Some(t) if t.time() == chrono::NaiveTime::MIN => t.date().to_string(),
            Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            None => dt.as_f64().to_string(),
        },
        Data::DateTimeIso(s) | Data::DurationIso(s) => s.clone(),
        Data::Error(e) => format!("#{e:?}"),
    }
}

pub fn read_xlsx(file: &str, bytes: &[u8]) -> Result<Table, DataError> {
    let mut wb =
        calamine::open_workbook_auto_from_rs(std::io::Cursor::new(bytes)).map_err(|e| {
            read_err(
                file,
                format!("不是可读取的 XLSX 工作簿，请用 Excel 另存为 .xlsx 后重试 ({e})"),
            )
        })?;
    let range = wb
        .worksheet_range_at(0)
        .ok_or_else(|| read_err(file, "工作簿里没有工作表"))?
        .map_err(|e| read_err(file, e))?;
    let first_row = range.start().map(|(r, _)| r as usize).unwrap_or(0);
    let first_col = range.start().map(|(_, c)| c as usize).unwrap_or(0);
    let mut header = None;
    let mut rows = Vec::new();
    for (i, row) in range.rows().enumerate() {
        let mut cells: Vec<String> = vec![String::new(); first_col];
        cells.extend(row.iter().map(cell_text));
        if cells.iter().all(String::is_empty) {
            continue;
        }
        if header.is_none() {
            header = Some(cells);
        } else {
            rows.push((first_row + i + 1, cells));
        }
    }
    let header = header.ok_or_else(|| read_err(file, "the first worksheet is empty"))?;
    Ok(Table { header, rows })
}

/// Whether a cell holds a long number that a spreadsheet stored as a number, losing digits
/// (an ID number typed into a column not formatted as text).
pub fn lost_digits(s: &str) -> bool {
    s.contains(['E', 'e']) && s.parse::<f64>().is_ok_and(|f| f.abs() >= 1e15)
}

/// A column a sheet may have: its key and the names people give it.
pub struct Col {
    pub key: &'static str,
    pub names: &'static [&'static str],
    pub required: bool,
}

/// Columns that are read and ignored (a row number, remarks).
const IGNORED: &[&str] = &["序号", "no", "#", "备注", "remarks", "notes"];

fn norm(s: &str) -> String {
    s.trim()
        .trim_start_matches('*')
        .trim_end_matches('*')
        .trim_end_matches("（必填）")
        .trim_end_matches("(必填)")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '_' && *c != '-')
        .collect::<String>()
        .to_lowercase()
}

/// Where each known column is in a header.
#[derive(Debug)]
pub struct Columns {
    index: BTreeMap<&'static str, (usize, String)>,
}

impl Columns {
    /// Finds the columns; an unknown, repeated or missing required column is refused here,
    /// before any row is read.
    pub fn find(file: &str, header: &[String], spec: &[Col]) -> Result<Columns, DataError> {
        let mut index = BTreeMap::new();
        let mut problems = Vec::new();
        for (i, h) in header.iter().enumerate() {
            let n = norm(h);
            if n.is_empty() || IGNORED.iter().any(|x| norm(x) == n) {
                continue;
            }
            // A header may carry both names, e.g. "姓名 name" or "姓名/name".
            let matches = |c: &Col| {
                c.names.iter().any(|a| {
                    let a = norm(a);
                    n == a
                        || h.split([' ', '/', '|', '（', '('])
                            .map(|part| norm(part.trim_end_matches([')', '）'])))
                            .any(|p| p == a)
                })
            };
            match spec.iter().find(|c| matches(c)) {
                Some(c) => {
                    if let Some((j, _)) = index.get(c.key) {
                        problems.push(format!(
                            "第 {} 列和第 {} 列都是「{}」，请删去其中一列",
                            col_letter(*j),
                            col_letter(i),
                            c.names[0]
                        ));
                    } else {
                        index.insert(c.key, (i, h.trim().to_owned()));
                    }
                }
                None => problems.push(format!(
                    "第 {} 列「{}」不是可识别的列，请按模板改列名或删去该列",
                    col_letter(i),
                    h.trim()
                )),
            }
        }
        for c in spec.iter().filter(|c| c.required) {
            if !index.contains_key(c.key) {
                problems.push(format!(
                    "缺少必需的列「{}」，请按模板补上",
                    c.names.join(" / ")
                ));
            }
        }
        if problems.is_empty() {
            Ok(Columns { index })
        } else {
            let known: Vec<String> = spec.iter().map(|c| c.names.join("/")).collect();
            Err(DataError::Header {
                file: file.to_owned(),
                reason: format!(
                    "{} (known columns: {})",
                    problems.join("; "),
                    known.join(", ")
                ),
            })
        }
    }

    /// The column's name as the file spells it (for the report).
    pub fn name(&self, key: &'static str) -> String {
        self.index
            .get(key)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| key.to_owned())
    }

    /// The cell of a row, "" when the column is absent or the row is short.
    pub fn get<'r>(&self, row: &'r [String], key: &str) -> &'r str {
        self.index
            .get(key)
            .and_then(|(i, _)| row.get(*i))
            .map(String::as_str)
            .unwrap_or("")
    }
}

/// A spreadsheet's column letter (A, B, ..., Z, AA, ...).
pub fn col_letter(mut i: usize) -> String {
    let mut s = Vec::new();
    loop {
        s.push(b'A' + (i % 26) as u8);
        if i < 26 {
            break;
        }
        i = i / 26 - 1;
    }
    s.reverse();
    String::from_utf8(s).expect("ASCII")
}

/// Collects the problems of one row.
#[derive(Debug, Default)]
pub struct RowErrors {
    pub errors: Vec<RowError>,
}

impl RowErrors {
    pub fn push(&mut self, row: usize, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(RowError {
            row,
            field: field.into(),
            reason: reason.into(),
        });
    }
}

/// A coded value from its code, its Chinese or English label, or one part of a Chinese label
/// that has a slash (独居/空巢老人 is also "空巢老人"), case and spaces ignored; `extra` adds
/// common synonyms (本人 for 户主).
pub fn coded<T: Coded>(s: &str, extra: &[(&str, T)]) -> Result<T, String> {
    // Most cells hold a label or code exactly: no allocation for those.
    if let Some(v) = T::ALL.iter().find(|v| v.zh() == s || v.code() == s) {
        return Ok(*v);
    }
    let n = norm(s);
    for v in T::ALL {
        if norm(v.code()) == n
            || norm(v.zh()) == n
            || norm(v.en()) == n
            || v.zh().split('/').any(|p| norm(p) == n)
        {
            return Ok(*v);
        }
    }
    if let Some((_, v)) = extra.iter().find(|(a, _)| norm(a) == n) {
        return Ok(*v);
    }
    let known: Vec<String> = T::ALL
        .iter()
        .map(|v| format!("{} {}", v.code(), v.zh()))
        .collect();
    let kind = crate::domain::codes::kind_zh(T::KIND);
    Err(format!(
        "「{s}」不是可选的{kind}，请改为其中之一：{}",
        known.join("、")
    ))
}

/// Splits a list cell: `;`, `；`, `、`, `,`, `，` or `|` between items.
pub fn split_list(s: &str) -> Vec<&str> {
    s.split([';', '；', '、', ',', '，', '|'])
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .collect()
}

/// A date as people write it: 2026-11-29, 2026/11/29, 2026.11.29, 20261129, 2026年11月29日.
pub fn date(s: &str) -> Result<NaiveDate, String> {
    let t = s.trim();
    let t = t.split([' ', 'T']).next().unwrap_or(t);
    let cleaned: String = t
        .replace(['年', '月', '/', '.'], "-")
        .trim_end_matches('日')
        .to_owned();
    for f in ["%Y-%m-%d", "%Y%m%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(&cleaned, f) {
            return Ok(d);
        }
    }
    Err(format!("「{s}」不是日期，请按 2026-11-29 的格式填写"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::codes::{Relation, Sex, Tag};

    const SPEC: &[Col] = &[
        Col {
            key: "name",
            names: &["姓名", "name"],
            required: true,
        },
        Col {
            key: "id_number",
            names: &["身份证号", "公民身份号码", "id_number"],
            required: false,
        },
    ];

    #[test]
    fn a_neutralised_export_reads_back_as_it_was() {
        use crate::server::data::export::{Cell, Sheet, neutralise, to_csv};
        for v in ["=1+1", "+8613800138000", "-", "@x", "'quoted", "普通"] {
            assert_eq!(unguard(&neutralise(v)), v);
        }
        let sheet = Sheet {
            name: "t".into(),
            header: vec!["姓名".into(), "身份证号".into()],
            rows: vec![vec![Cell::Text("=张三".into()), Cell::Text("-1".into())]],
        };
        let t = read_csv("a.csv", &to_csv(&sheet).unwrap()).unwrap();
        assert_eq!(t.rows[0].1, vec!["=张三".to_owned(), "-1".to_owned()]);
    }

    #[test]
    fn csv_with_bom_and_gbk_reads_the_same() {
        let utf8 = "\u{feff}姓名,身份证号\n张三,11010519491231002X\n,\n李四,\n";
        let t = read_csv("a.csv", utf8.as_bytes()).unwrap();
        assert_eq!(t.header, vec!["姓名", "身份证号"]);
        assert_eq!(
            t.rows,
            vec![
                (2, vec!["张三".into(), "11010519491231002X".into()]),
                (4, vec!["李四".into(), "".into()])
            ]
        );
        let (gbk, _, _) = encoding_rs::GB18030.encode(&utf8[3..]);
        assert_eq!(read_csv("a.csv", &gbk).unwrap(), t);
    }

    #[test]
    fn headers_match_chinese_or_english_names() {
        let h = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let c = Columns::find("f", &h(&["序号", "Name", "公民身份号码"]), SPEC).unwrap();
        assert_eq!(c.get(&h(&["1", "张三", "x"]), "id_number"), "x");
        assert_eq!(c.name("id_number"), "公民身份号码");
        let c = Columns::find("f", &h(&["姓名 name", "*id_number"]), SPEC).unwrap();
        assert_eq!(c.get(&h(&["张三", "x"]), "id_number"), "x");
        let e = Columns::find("f", &h(&["身份证号", "年龄"]), SPEC)
            .unwrap_err()
            .to_string();
        assert!(e.contains("第 B 列「年龄」不是可识别的列"), "{e}");
        assert!(e.contains("缺少必需的列「姓名 / name」"), "{e}");
        let e = Columns::find("f", &h(&["姓名", "name"]), SPEC)
            .unwrap_err()
            .to_string();
        assert!(e.contains("第 A 列和第 B 列"), "{e}");
    }

    #[test]
    fn coded_values_by_code_label_or_synonym() {
        assert_eq!(coded::<Sex>("男", &[]), Ok(Sex::Male));
        assert_eq!(coded::<Sex>("2", &[]), Ok(Sex::Female));
        assert_eq!(coded::<Sex>("female", &[]), Ok(Sex::Female));
        assert_eq!(coded::<Relation>("户主", &[]), Ok(Relation::Head));
        assert_eq!(
            coded::<Relation>("本人", &[("本人", Relation::Head)]),
            Ok(Relation::Head)
        );
        assert_eq!(coded::<Tag>("空巢老人", &[]), Ok(Tag::ElderlyAlone));
        assert_eq!(coded::<Tag>("low_income", &[]), Ok(Tag::LowIncome));
        let e = coded::<Tag>("富豪", &[]).unwrap_err();
        assert!(e.contains("富豪") && e.contains("LOW_INCOME 低保"), "{e}");
    }

    #[test]
    fn lists_dates_and_column_letters() {
        assert_eq!(
            split_list("低保; 残疾人、高龄,,"),
            vec!["低保", "残疾人", "高龄"]
        );
        let d = NaiveDate::from_ymd_opt(1949, 12, 31).unwrap();
        for s in [
            "1949-12-31",
            "1949/12/31",
            "19491231",
            "1949年12月31日",
            "1949-12-31 00:00:00",
        ] {
            assert_eq!(date(s), Ok(d), "{s}");
        }
        assert!(date("31.12.49").is_err());
        assert_eq!(col_letter(0), "A");
        assert_eq!(col_letter(25), "Z");
        assert_eq!(col_letter(26), "AA");
    }
}
