//! Importing accounts (county administrators only): username, display name, role, scope
//! code, grids (for grid workers) and an optional initial password. A new account without a
//! password gets a generated one, returned once in the report and stored only as its hash.
//! An existing username is updated (name, role, scope, grids; the password only when the
//! row gives one). Account rows are written here, beside `repo`'s, since only imports change
//! an account's role or scope.

use std::collections::{BTreeSet, HashMap};

use rand::RngExt;
use serde::Serialize;
use uuid::Uuid;

use super::pipeline::{Bar, Importer, Planned};
use super::table::{Col, Columns, RowErrors, Table, coded, split_list};
use super::{Ctx, DataError, ImportReport};
use crate::args;
use crate::domain::codes::Coded;
use crate::server::auth::hash_password;
use crate::server::db::Sql;
use crate::server::repo::{self, NewUser};
use crate::wire::Role;

pub const COLUMNS: &[Col] = &[
    Col {
        key: "username",
        names: &["用户名", "账号", "username"],
        required: true,
    },
    Col {
        key: "display_name",
        names: &["姓名", "显示名", "display_name", "name"],
        required: true,
    },
    Col {
        key: "role",
        names: &["角色", "role"],
        required: true,
    },
    Col {
        key: "scope_code",
        names: &["范围编码", "区划代码", "scope_code", "scope"],
        required: true,
    },
    Col {
        key: "grids",
        names: &["网格", "网格编码", "grids"],
        required: false,
    },
    Col {
        key: "password",
        names: &["初始密码", "密码", "password"],
        required: false,
    },
];

/// A generated password, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewPassword {
    pub username: String,
    pub password: String,
}

/// Letters and digits that cannot be mistaken for each other when read aloud or copied.
const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

fn generate_password() -> String {
    let mut rng = rand::rng();
    (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub(super) struct Account {
    row: usize,
    username: String,
    display_name: String,
    role: Role,
    scope_code: String,
    grids: Vec<Uuid>,
    password: Option<String>,
    existing: Option<Uuid>,
}

/// An accounts file, through the import pipeline.
pub(super) struct AccountsImport {
    cols: Columns,
    table: Table,
}

impl AccountsImport {
    pub(super) fn new(ctx: &Ctx<'_>, table: Table) -> Result<AccountsImport, DataError> {
        Ok(AccountsImport {
            cols: Columns::find(ctx.file, &table.header, COLUMNS)?,
            table,
        })
    }
}

/// A role's scope code: its length by role (a relay's, like a secretary's, its village's 12),
/// digits, within the importer's own scope.
fn check_scope(ctx: &Ctx<'_>, role: Option<Role>, scope_code: &str) -> Option<String> {
    let digits = match role {
        Some(Role::Admin) => 6,
        Some(Role::Town) => 9,
        // A department serves the county, a town or a village.
        Some(Role::Assignee) if [6, 9].contains(&scope_code.len()) => scope_code.len(),
        _ => 12,
    };
    if scope_code.len() != digits || !scope_code.bytes().all(|b| b.is_ascii_digit()) {
        Some(format!(
            "「{scope_code}」须为账号所在{}的 {digits} 位区划代码",
            match digits {
                6 => "区县",
                9 => "乡镇",
                _ => "村（社区）",
            }
        ))
    } else if !scope_code.starts_with(&ctx.actor.scope_code) {
        Some(format!(
            "{scope_code} 不在你的管辖范围（{}）内",
            ctx.actor.scope_code
        ))
    } else {
        None
    }
}

/// One row: every column checked on its own and against the stored accounts and grids.
fn read_row(
    db: &mut dyn Sql,
    ctx: &Ctx<'_>,
    cols: &Columns,
    (row, cells): (usize, &[String]),
    seen: &mut HashMap<String, usize>,
    errs: &mut RowErrors,
) -> Result<Option<Account>, DataError> {
    let before = errs.errors.len();
    let g = |k: &str| cols.get(cells, k);
    let mut err = |k: &'static str, reason: String| errs.push(row, cols.name(k), reason);
    let username = g("username").to_owned();
    if !(3..=32).contains(&username.len())
        || !username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        err(
            "username",
            format!("用户名「{username}」须为 3 到 32 位小写字母、数字、“.”、“_”或“-”"),
        );
    } else if let Some(r) = seen.insert(username.clone(), row) {
        err(
            "username",
            format!("用户名 {username} 已在第 {r} 行，请改用别的用户名"),
        );
    }
    let display_name = g("display_name").to_owned();
    if display_name.is_empty() || display_name.chars().count() > 40 {
        err("display_name", "须填写姓名，最多 40 个字".into());
    }
    let role = coded::<Role>(
        g("role"),
        &[
            ("管理员", Role::Admin),
            ("网格长", Role::Secretary),
            ("村书记", Role::Secretary),
            ("乡镇", Role::Town),
            ("承办人", Role::Assignee),
            ("承办单位", Role::Assignee),
            ("中转站", Role::Relay),
        ],
    )
    .map_err(|e| err("role", e))
    .ok();
    let scope_code = g("scope_code").to_owned();
    if let Some(why) = check_scope(ctx, role, &scope_code) {
        err("scope_code", why);
    }
    let mut grids = Vec::new();
    for code in split_list(g("grids")) {
        if !code.starts_with(&scope_code) {
            err(
                "grids",
                format!("网格 {code} 不在这个账号的范围 {scope_code} 内"),
            );
            continue;
        }
        match repo::grid_id_by_code(db, code)? {
            Some(id) => grids.push(id),
            None => err("grids", format!("没有网格 {code}：请先导入网格边界")),
        }
    }
    if role == Some(Role::Worker) && split_list(g("grids")).is_empty() {
        err("grids", "网格员须至少填写一个网格".into());
    } else if role.is_some_and(|r| r != Role::Worker) && !grids.is_empty() {
        err("grids", "只有网格员才分配网格，其他角色请留空".into());
    }
    let password = match g("password") {
        "" => None,
        p if p.chars().count() < 8 => {
            err("password", "初始密码至少 8 位".into());
            None
        }
        p => Some(p.to_owned()),
    };
    let existing = match repo::user_by_name(db, &username)? {
        Some((u, _)) if !u.scope_code.starts_with(&ctx.actor.scope_code) => {
            err(
                "username",
                format!("用户名 {username} 已被你辖区外的账号使用，请改用别的用户名"),
            );
            None
        }
        found => found.map(|(u, _)| u.id),
    };
    if errs.errors.len() > before {
        return Ok(None);
    }
    Ok(Some(Account {
        row,
        username,
        display_name,
        role: role.expect("checked"),
        scope_code,
        grids,
        password,
        existing,
    }))
}

fn hash(password: &str) -> Result<String, DataError> {
    hash_password(password).map_err(|e| DataError::Write {
        what: "password hash",
        reason: e.to_string(),
    })
}

/// A new account (its password generated when the row gives none, shown once).
fn create(
    db: &mut dyn Sql,
    ctx: &Ctx<'_>,
    p: Account,
    report: &mut ImportReport,
) -> Result<(), DataError> {
    let password = match p.password {
        Some(pw) => pw,
        None => {
            let pw = generate_password();
            report.passwords.push(NewPassword {
                username: p.username.clone(),
                password: pw.clone(),
            });
            pw
        }
    };
    repo::create_user(
        db,
        &NewUser {
            username: p.username.clone(),
            display_name: p.display_name,
            role: p.role,
            scope_code: p.scope_code,
            password_hash: hash(&password)?,
            grids: p.grids,
        },
        ctx.now,
    )?;
    repo::audit(
        db,
        ctx.now,
        &ctx.actor.username,
        None,
        "IMPORT_USER_ADD",
        None,
        None,
        Some(format!("{} ({} row {})", p.username, ctx.file, p.row)),
    )?;
    Ok(())
}

/// A stored account changed; answers whether anything did.
fn update(db: &mut dyn Sql, ctx: &Ctx<'_>, id: Uuid, p: &Account) -> Result<bool, DataError> {
    let changed = update_user(db, id, p)?;
    if let Some(pw) = &p.password {
        repo::set_password(db, &p.username, &hash(pw)?)?;
    }
    if !changed && p.password.is_none() {
        return Ok(false);
    }
    repo::audit(
        db,
        ctx.now,
        &ctx.actor.username,
        None,
        "IMPORT_USER_UPDATE",
        None,
        None,
        Some(format!(
            "{}{}",
            p.username,
            if p.password.is_some() {
                " (password set)"
            } else {
                ""
            }
        )),
    )?;
    Ok(true)
}

impl Importer for AccountsImport {
    type Row = Account;
    type Unit = Account;

    fn total(&self) -> usize {
        self.table.rows.len()
    }

    fn read(
        &mut self,
        db: &mut dyn Sql,
        ctx: &Ctx<'_>,
        errs: &mut RowErrors,
        bar: &mut Bar<'_>,
    ) -> Result<Vec<Account>, DataError> {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut rows = Vec::new();
        for (i, (row, cells)) in self.table.rows.iter().enumerate() {
            bar.checked(i);
            if let Some(a) = read_row(db, ctx, &self.cols, (*row, cells), &mut seen, errs)? {
                rows.push(a);
            }
        }
        Ok(rows)
    }

    fn plan(
        &mut self,
        _db: &mut dyn Sql,
        _ctx: &Ctx<'_>,
        rows: Vec<Account>,
        _errs: &mut RowErrors,
        _bar: &mut Bar<'_>,
    ) -> Result<Vec<Planned<Account>>, DataError> {
        Ok(rows
            .into_iter()
            .map(|a| Planned {
                rows: vec![a.row],
                unit: a,
            })
            .collect())
    }

    fn write(
        &mut self,
        db: &mut dyn Sql,
        ctx: &Ctx<'_>,
        p: Account,
        _good: &[usize],
        _bad: &BTreeSet<usize>,
        report: &mut ImportReport,
    ) -> Result<(usize, usize), DataError> {
        Ok(match p.existing {
            None => {
                create(db, ctx, p, report)?;
                (1, 0)
            }
            Some(id) => (0, usize::from(update(db, ctx, id, &p)?)),
        })
    }
}

/// Sets an account's name, role, scope and grids; answers whether anything changed.
fn update_user(db: &mut dyn Sql, id: Uuid, p: &Account) -> Result<bool, DataError> {
    let n = db.exec(
        "UPDATE users SET display_name = $2, role = $3, scope_code = $4
         WHERE id = $1 AND (display_name <> $2 OR role <> $3 OR scope_code <> $4)",
        args![
            id.to_string(),
            &p.display_name,
            p.role.code(),
            &p.scope_code
        ],
    )?;
    let mut had: Vec<String> = db
        .query(
            "SELECT grid_id FROM user_grids WHERE user_id = $1",
            args![id.to_string()],
        )?
        .into_iter()
        .map(|r| r[0].string())
        .collect::<Result<_, _>>()?;
    let mut want: Vec<String> = p.grids.iter().map(Uuid::to_string).collect();
    had.sort();
    want.sort();
    want.dedup();
    if had == want {
        return Ok(n > 0);
    }
    db.exec(
        "DELETE FROM user_grids WHERE user_id = $1",
        args![id.to_string()],
    )?;
    for g in &want {
        db.exec(
            "INSERT INTO user_grids (user_id, grid_id) VALUES ($1, $2)",
            args![id.to_string(), g],
        )?;
    }
    Ok(true)
}
