//! Validation that says which field is wrong and why.
//!
//! Input is parsed into domain types at the edge ([`IdNumber::parse`], [`Phone::parse`],
//! [`GeoPoint::new`](super::geo::GeoPoint::new)); a [`Validator`] collects every problem of a
//! form at once so the UI can show each message beside its field.
//!
//! Each problem is a [`Problem`]: a kind with its facts, not a sentence. A screen words it in
//! the reader's language with the field's label as that screen shows it
//! ([`Problem::text`]); the API keeps the machine field path and an English `reason`.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::codes::{Coded, Domain, Lang};
use super::labels::field_label;
use super::lifecycle::Status;

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field's path, e.g. `location.lon` or `parties[1].phone`.
    pub field: String,
    /// Why it is wrong, in English, for the API and logs.
    pub reason: String,
    /// What is wrong, for wording in the reader's language.
    #[serde(default = "Problem::unknown")]
    pub problem: Problem,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: Problem) -> FieldError {
        let field = field.into();
        let reason = problem.text(Lang::En, &field_label(&field, Lang::En));
        FieldError {
            field,
            reason,
            problem,
        }
    }

    /// The message in `lang`, naming the field by its usual label.
    pub fn message(&self, lang: Lang) -> String {
        self.problem.text(lang, &field_label(&self.field, lang))
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// What is wrong with a field: the facts, worded by [`Problem::text`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "code", content = "detail", rename_all = "snake_case")]
pub enum Problem {
    /// Empty, or only spaces.
    Required,
    /// Longer than allowed, in characters.
    TooLong { len: usize, max: usize },
    /// A date after today.
    FutureDate { value: NaiveDate, today: NaiveDate },
    /// A moment after now (beyond a few minutes of clock drift).
    FutureTime {
        value: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// Text typed where a date (2026-12-01) was wanted.
    DateFormat { typed: String },
    /// Text typed where a whole number was wanted.
    NotWholeNumber { typed: String },
    /// Earlier than another field of the same form (named by its path).
    Before {
        value: String,
        other: String,
        other_value: String,
    },
    /// A birth date that is not the one in the ID number.
    BirthDateMismatch {
        given: NaiveDate,
        from_id: NaiveDate,
    },
    /// Not a valid 居民身份证 number.
    IdNumber(IdNumberError),
    /// Not a mobile or landline number.
    Phone { typed: String },
    /// The same tag twice.
    DuplicateTag,
    /// A status the record's lifecycle does not have.
    NotInLifecycle { status: Status, domain: Domain },
    /// A new record not in its lifecycle's first status.
    NotInitialStatus {
        status: Status,
        initial: Status,
        domain: Domain,
    },
    /// A photo reference that is not a SHA-256 digest.
    PhotoDigest,
    /// A coordinate that is not a number.
    NotFinite,
    /// A coordinate outside WGS84.
    OutOfRange { value: String, limit: String },
    /// A place outside China (or longitude and latitude swapped).
    OutsideChina { lon: String, lat: String },
    /// A negative or infinite distance.
    BadDistance,
    /// A dispute with no party.
    NoParty,
    /// A mediation session with no participant.
    NoParticipant,
    /// A generic event of a domain that has its own form.
    OwnRecordType { domain: Domain },
    /// A reference to a record of another kind than the form needs.
    WrongKind { expected: Domain },
    /// An edit of a record's id or creation time.
    Immutable,
    /// A status changed by editing the record instead of by a step of its lifecycle.
    StatusByEdit,
    /// A visit to a household of another grid.
    WrongGrid,
    /// A track point for a patrol that has ended.
    NotRecording,
    /// A file that is not a JPEG, PNG or WebP photo.
    NotImage,
    /// A choice (from a list) not made.
    NotChosen,
    /// A field of another record type's form, given on a record of `domain`.
    NotForDomain { domain: Domain },
    /// A count of people outside 1..=`max`.
    Headcount { value: i64, max: u32 },
    /// A person already in the household: the same ID number, or the same name and birth date.
    DuplicatePerson { name: String },
    /// A newborn entered with a relation other than child or grandchild.
    NewbornRelation,
    /// A change of someone no longer in the household (moved out, deceased).
    NotActiveMember { status: super::codes::PersonStatus },
    /// Anything else, already worded (no translation: [`Problem::is_worded`] is false).
    Other(String),
}

impl Problem {
    fn unknown() -> Problem {
        Problem::Other(String::new())
    }

    /// Whether this problem has its own wording in every language (only `Other` has not).
    pub fn is_worded(&self) -> bool {
        !matches!(self, Problem::Other(_))
    }

    /// The message in `lang`, with `label` the field's name as the reader's screen shows it.
    pub fn text(&self, lang: Lang, label: &str) -> String {
        let zh = lang == Lang::Zh;
        let l = label;
        match self {
            Problem::Required => {
                if zh {
                    format!("请填写{l}")
                } else {
                    format!("{l} is required")
                }
            }
            Problem::TooLong { len, max } => {
                if zh {
                    format!("{l}最多 {max} 字，现为 {len} 字，请删减")
                } else {
                    format!("{l} is {len} characters long; at most {max} allowed")
                }
            }
            Problem::FutureDate { value, today } => {
                if zh {
                    format!("{l}（{value}）晚于今天（{today}），请改为今天或更早的日期")
                } else {
                    format!("{l} {value} is in the future (today is {today})")
                }
            }
            Problem::FutureTime { value, now } => {
                let cst = |t: &DateTime<Utc>| {
                    (*t + chrono::Duration::hours(8))
                        .format("%Y-%m-%d %H:%M")
                        .to_string()
                };
                if zh {
                    format!(
                        "{l}（{}）晚于现在（{}），请检查手机的日期和时间",
                        cst(value),
                        cst(now)
                    )
                } else {
                    format!(
                        "{l} {} is in the future (now is {})",
                        value.to_rfc3339(),
                        now.to_rfc3339()
                    )
                }
            }
            Problem::DateFormat { typed } => {
                if zh {
                    format!("{l}「{typed}」不是日期，请按 2026-12-01 的格式填写")
                } else {
                    format!("{l} {typed:?} is not a date; write it like 2026-12-01")
                }
            }
            Problem::NotWholeNumber { typed } => {
                if zh {
                    format!("{l}须为整数，如 0 或 3（现为「{typed}」）")
                } else {
                    format!("{l} must be a whole number such as 0 or 3 (got {typed:?})")
                }
            }
            Problem::Before {
                value,
                other,
                other_value,
            } => {
                let o = field_label(other, lang);
                if zh {
                    format!("{l}（{value}）早于{o}（{other_value}），请改为{o}当时或之后")
                } else {
                    format!("{l} {value} is before the {o} ({other_value})")
                }
            }
            Problem::BirthDateMismatch { given, from_id } => {
                if zh {
                    format!("{l}（{given}）与身份证号中的出生日期（{from_id}）不一致，请核对")
                } else {
                    format!("{l} {given} differs from the ID number's birth date {from_id}")
                }
            }
            Problem::IdNumber(e) => e.text(lang, l),
            Problem::Phone { typed } => {
                if zh {
                    format!(
                        "{l}「{typed}」不是有效号码：手机为 1 开头的 11 位数字，座机为区号加 7-8 位号码（如 0794-8123456），请核对"
                    )
                } else {
                    format!(
                        "{l} {typed:?} is neither a mobile number (11 digits starting 13-19) nor a landline (0 + area code + 7-8 digits)"
                    )
                }
            }
            Problem::DuplicateTag => {
                if zh {
                    format!("{l}中有重复的标签，请去掉重复项")
                } else {
                    format!("{l}: a tag is listed twice")
                }
            }
            Problem::NotInLifecycle { status, domain } => {
                if zh {
                    format!("状态「{}」不属于{}的办理流程", status.zh(), domain.zh())
                } else {
                    format!(
                        "{} is not a status of the {} lifecycle",
                        status.code(),
                        domain.en()
                    )
                }
            }
            Problem::NotInitialStatus {
                status,
                initial,
                domain,
            } => {
                if zh {
                    format!(
                        "新登记的{}状态应为「{}」，现为「{}」",
                        domain.zh(),
                        initial.zh(),
                        status.zh()
                    )
                } else {
                    format!(
                        "a new {} record starts as {}, not {}",
                        domain.code(),
                        initial.code(),
                        status.code()
                    )
                }
            }
            Problem::PhotoDigest => {
                if zh {
                    format!("{l}的编号无效（应为 64 位小写十六进制的 SHA-256），请重新添加照片")
                } else {
                    format!("{l} must be a SHA-256 digest in 64 lower-case hex digits")
                }
            }
            Problem::NotFinite => {
                if zh {
                    format!("{l}不是有效的数字，请重新定位")
                } else {
                    format!("{l} is not a finite number")
                }
            }
            Problem::OutOfRange { value, limit } => {
                if zh {
                    format!(
                        "{l} {value} 超出范围（-{limit} 到 {limit}），请重新定位或检查经纬度是否填反"
                    )
                } else {
                    format!("{l} {value} is outside the WGS84 range -{limit}..{limit}")
                }
            }
            Problem::OutsideChina { lon, lat } => {
                if zh {
                    format!("位置 ({lon}, {lat}) 不在中国境内，请重新定位或检查经纬度是否填反")
                } else {
                    format!(
                        "the point ({lon}, {lat}) is outside China's bounding box: locate again, or check that longitude and latitude are not swapped"
                    )
                }
            }
            Problem::BadDistance => {
                if zh {
                    format!("{l}须为 0 米或以上的数")
                } else {
                    format!("{l} must be a finite distance of 0 m or more")
                }
            }
            Problem::NoParty => {
                if zh {
                    "请至少填写一位当事人".to_owned()
                } else {
                    "a dispute needs at least one party".to_owned()
                }
            }
            Problem::NoParticipant => {
                if zh {
                    format!("请在{l}中至少填写一人")
                } else {
                    format!("{l}: name at least one participant")
                }
            }
            Problem::NotChosen => {
                if zh {
                    format!("请选择{l}")
                } else {
                    format!("choose the {l}")
                }
            }
            Problem::NotForDomain { domain } => {
                if zh {
                    format!("{}不填{l}，请去掉{l}", domain.zh())
                } else {
                    format!("a {} record has no {l}", domain.en())
                }
            }
            Problem::Headcount { value, max } => {
                if zh {
                    format!("{l}须为 1 到 {max} 之间的人数（现为 {value}），请核对")
                } else {
                    format!("{l} must be between 1 and {max} people (got {value})")
                }
            }
            Problem::OwnRecordType { domain } => {
                if zh {
                    format!("{}有专门的登记表，请用它登记", domain.zh())
                } else {
                    format!("{} has its own record type", domain.code())
                }
            }
            Problem::WrongKind { expected } => {
                if zh {
                    format!(
                        "{l}所指的记录不是{}，请从{}的详情页添加",
                        expected.zh(),
                        expected.zh()
                    )
                } else {
                    format!("{l} does not name a {} record", expected.en())
                }
            }
            Problem::Immutable => {
                if zh {
                    "记录的编号和创建时间不能修改".to_owned()
                } else {
                    "a record's id and creation time never change".to_owned()
                }
            }
            Problem::StatusByEdit => {
                if zh {
                    format!("{l}不能直接修改，请用记录页上的办理步骤改变状态")
                } else {
                    format!("{l} changes only through a step of the record's lifecycle")
                }
            }
            Problem::WrongGrid => {
                if zh {
                    "这一户不在你的网格内，不能为它记录走访；请同步后再看".to_owned()
                } else {
                    "the household is not in your grid".to_owned()
                }
            }
            Problem::NotRecording => {
                if zh {
                    "这次巡防已经结束，不能再记录轨迹".to_owned()
                } else {
                    "the patrol has ended; it takes no more track points".to_owned()
                }
            }
            Problem::NotImage => {
                if zh {
                    format!("所选文件不是照片（只收 JPEG、PNG、WebP），请重新选择{l}")
                } else {
                    format!("{l}: the file is not a JPEG, PNG or WebP photo")
                }
            }
            Problem::DuplicatePerson { name } => {
                if zh {
                    format!("本户已登记「{name}」（{l}相同），请勿重复添加")
                } else {
                    format!("{name} is already in this household (same {l})")
                }
            }
            Problem::NewbornRelation => {
                if zh {
                    format!("新生儿的{l}应为子、女或孙子女，请重新选择")
                } else {
                    format!("a newborn's {l} is son, daughter or grandchild")
                }
            }
            Problem::NotActiveMember { status } => {
                if zh {
                    format!("此人已{}，不能再修改{l}", status.zh())
                } else {
                    format!("this person is {}; {l} no longer changes", status.en())
                }
            }
            Problem::Other(s) => s.clone(),
        }
    }
}

/// Every problem found in one input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct ValidationErrors {
    pub errors: Vec<FieldError>,
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid input: ")?;
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl ValidationErrors {
    pub fn single(field: impl Into<String>, problem: Problem) -> Self {
        ValidationErrors {
            errors: vec![FieldError::new(field, problem)],
        }
    }

    /// The English reason given for `field`, if any.
    pub fn for_field(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.reason.as_str())
    }

    /// The problem with `field`, if any (what a screen words beside it).
    /// These errors less those of `field` (the worker has edited it); `None` when none is left.
    pub fn without(mut self, field: &str) -> Option<ValidationErrors> {
        self.errors.retain(|e| e.field != field);
        (!self.errors.is_empty()).then_some(self)
    }

    pub fn problem(&self, field: &str) -> Option<&Problem> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| &e.problem)
    }

    /// Every message in `lang`, each naming its field by its usual label.
    pub fn message(&self, lang: Lang) -> String {
        let sep = if lang == Lang::Zh { "；" } else { "; " };
        self.errors
            .iter()
            .map(|e| e.message(lang))
            .collect::<Vec<_>>()
            .join(sep)
    }

    /// Prefixes every field path, for errors of a nested value (`parties[2]`).
    pub fn nest(mut self, prefix: &str) -> Self {
        for e in &mut self.errors {
            e.field = format!("{prefix}.{}", e.field);
            e.reason = e.problem.text(Lang::En, &field_label(&e.field, Lang::En));
        }
        self
    }
}

/// Collects field errors; `finish` turns them into a result.
#[derive(Debug, Default)]
pub struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn error(&mut self, field: impl Into<String>, problem: Problem) {
        self.errors.push(FieldError::new(field, problem));
    }

    /// A required text: present and not only whitespace, at most `max` characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.error(field, Problem::Required);
        } else {
            self.optional_text(field, Some(value), max);
        }
    }

    /// An optional text of at most `max` characters.
    pub fn optional_text(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(v) = value {
            let len = v.chars().count();
            if len > max {
                self.error(field, Problem::TooLong { len, max });
            }
        }
    }

    /// A date that must not lie after `today`.
    pub fn not_future_date(&mut self, field: &str, value: NaiveDate, today: NaiveDate) {
        if value > today {
            self.error(field, Problem::FutureDate { value, today });
        }
    }

    /// A moment that must not lie after `now` (a few minutes of clock drift are tolerated).
    pub fn not_future_time(&mut self, field: &str, value: DateTime<Utc>, now: DateTime<Utc>) {
        if value > now + chrono::Duration::minutes(5) {
            self.error(field, Problem::FutureTime { value, now });
        }
    }

    /// Merges the errors of a nested value under `prefix`.
    pub fn nested(&mut self, prefix: &str, result: Result<(), ValidationErrors>) {
        if let Err(e) = result {
            self.errors.extend(e.nest(prefix).errors);
        }
    }

    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors {
                errors: self.errors,
            })
        }
    }
}

/// Why an ID number is not a valid 居民身份证 number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum IdNumberError {
    #[error("must be 18 characters (17 digits and a check digit 0-9 or X), got {0}")]
    Length(usize),
    #[error("character {position} ({found:?}) must be a digit")]
    NotDigit { position: usize, found: char },
    #[error("the check character must be a digit or X, got {0:?}")]
    BadCheckChar(char),
    #[error("region code {0} is not a valid administrative code")]
    Region(String),
    #[error("birth date {0} is not a real date")]
    BirthDate(String),
    #[error("birth date {birth} is after today ({today})")]
    FutureBirth { birth: NaiveDate, today: NaiveDate },
    #[error("check digit is {found}, but GB 11643 gives {expected} for these 17 digits")]
    CheckDigit { found: char, expected: char },
}

impl IdNumberError {
    /// The message in `lang`, with `l` the field's label.
    pub fn text(&self, lang: Lang, l: &str) -> String {
        if lang == Lang::En {
            return format!("{l}: {self}");
        }
        match self {
            IdNumberError::Length(n) => {
                format!("{l}应为 18 位（17 位数字加 1 位校验码 0-9 或 X），现为 {n} 位，请核对")
            }
            IdNumberError::NotDigit { position, found } => {
                format!("{l}第 {position} 位「{found}」应为数字，请核对")
            }
            IdNumberError::BadCheckChar(c) => {
                format!("{l}最后一位应为数字或 X，现为「{c}」，请核对")
            }
            IdNumberError::Region(r) => {
                format!("{l}前 6 位的地区码 {r} 不存在，请核对")
            }
            IdNumberError::BirthDate(d) => {
                format!("{l}第 7-14 位的出生日期 {d} 不是有效日期，请核对")
            }
            IdNumberError::FutureBirth { birth, .. } => {
                format!("{l}中的出生日期 {birth} 晚于今天，请核对")
            }
            IdNumberError::CheckDigit { found, expected } => format!(
                "{l}校验码不对：最后一位是 {found}，按前 17 位应为 {expected}，请逐位核对号码"
            ),
        }
    }
}

/// A 18-digit 居民身份证 number whose GB 11643 check digit is right.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct IdNumber(String);

const ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const ID_CHECK: [char; 11] = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2'];

impl IdNumber {
    /// The GB 11643 check character of the first 17 digits.
    pub fn check_char(first17: &str) -> char {
        let sum: u32 = first17
            .chars()
            .zip(ID_WEIGHTS)
            .map(|(c, w)| c.to_digit(10).unwrap_or(0) * w)
            .sum();
        ID_CHECK[(sum % 11) as usize]
    }

    /// Parses and checks a number (a lower-case x is accepted and stored upper-case).
    /// The birth date must not be after `today`.
    pub fn parse(input: &str, today: NaiveDate) -> Result<IdNumber, IdNumberError> {
        let s: String = input.trim().to_uppercase();
        let chars: Vec<char> = s.chars().collect();
        if chars.len() != 18 {
            return Err(IdNumberError::Length(chars.len()));
        }
        for (i, c) in chars[..17].iter().enumerate() {
            if !c.is_ascii_digit() {
                return Err(IdNumberError::NotDigit {
                    position: i + 1,
                    found: *c,
                });
            }
        }
        let last = chars[17];
        if !(last.is_ascii_digit() || last == 'X') {
            return Err(IdNumberError::BadCheckChar(last));
        }
        let region = &s[..6];
        // Province codes run 11..=82; a county code never ends in 00 00 with province 00.
        let province: u32 = region[..2].parse().unwrap_or(0);
        if !(11..=82).contains(&province) {
            return Err(IdNumberError::Region(region.to_owned()));
        }
        let birth = NaiveDate::parse_from_str(&s[6..14], "%Y%m%d")
            .map_err(|_| IdNumberError::BirthDate(s[6..14].to_owned()))?;
        if birth.format("%Y").to_string().as_str() < "1880" {
            return Err(IdNumberError::BirthDate(s[6..14].to_owned()));
        }
        if birth > today {
            return Err(IdNumberError::FutureBirth { birth, today });
        }
        let expected = Self::check_char(&s[..17]);
        if expected != last {
            return Err(IdNumberError::CheckDigit {
                found: last,
                expected,
            });
        }
        Ok(IdNumber(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The birth date encoded in the number.
    pub fn birth_date(&self) -> NaiveDate {
        NaiveDate::parse_from_str(&self.0[6..14], "%Y%m%d").expect("checked at parse")
    }

    /// Sex from the 17th digit: odd is male.
    pub fn sex(&self) -> super::codes::Sex {
        let d = self.0.as_bytes()[16] - b'0';
        if d % 2 == 1 {
            super::codes::Sex::Male
        } else {
            super::codes::Sex::Female
        }
    }

    /// Masked for display: `1101**********1234`.
    pub fn masked(&self) -> String {
        mask_id(&self.0)
    }
}

impl TryFrom<String> for IdNumber {
    type Error = IdNumberError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        // Deserialising trusts no date: any past birth date is fine.
        IdNumber::parse(&s, NaiveDate::MAX)
    }
}

impl From<IdNumber> for String {
    fn from(v: IdNumber) -> String {
        v.0
    }
}

/// Masks any identity number: the first four and last four characters stay.
pub fn mask_id(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 8 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..4].iter().collect();
    out.push_str(&"*".repeat(chars.len() - 8));
    out.extend(&chars[chars.len() - 4..]);
    out
}

/// Masks every phone and ID number in a JSON value (fields named `phone` or `id_number`,
/// at any depth), as every screen and answer shows them unless revealed.
pub fn mask_personal(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                match (k.as_str(), &*x) {
                    ("phone", Value::String(s)) => *x = Value::String(mask_phone(s)),
                    ("id_number", Value::String(s)) => *x = Value::String(mask_id(s)),
                    _ => mask_personal(x),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(mask_personal),
        _ => {}
    }
}

/// Why a phone number is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error(
        "{0:?} is neither a mobile number (11 digits starting 13-19) nor a landline (0 + area code + 7-8 digits)"
    )]
    Format(String),
}

/// A mainland mobile (`13812345678`) or landline (`0794-1234567`) number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Phone(String);

impl Phone {
    pub fn parse(input: &str) -> Result<Phone, PhoneError> {
        let cleaned: String = input
            .trim()
            .trim_start_matches("+86")
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .collect();
        let all_digits = !cleaned.is_empty() && cleaned.chars().all(|c| c.is_ascii_digit());
        let b = cleaned.as_bytes();
        if all_digits && b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) {
            return Ok(Phone(cleaned));
        }
        // Landline: 0 + 2-3 digit area code + 7-8 digit number: 10 to 12 digits in all.
        if all_digits && b[0] == b'0' && b.len() >= 10 && b.len() <= 12 && b[1] != b'0' {
            let area = if matches!(b[1], b'1' | b'2') { 3 } else { 4 };
            return Ok(Phone(format!("{}-{}", &cleaned[..area], &cleaned[area..])));
        }
        Err(PhoneError::Format(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Masked for display: `138****5678`.
    pub fn masked(&self) -> String {
        mask_phone(&self.0)
    }
}

/// Masks a phone number: the first three and last four digits stay.
pub fn mask_phone(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 7 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..3].iter().collect();
    out.push_str(&"*".repeat(chars.len() - 7));
    out.extend(&chars[chars.len() - 4..]);
    out
}

impl TryFrom<String> for Phone {
    type Error = PhoneError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Phone::parse(&s)
    }
}

impl From<Phone> for String {
    fn from(v: Phone) -> String {
        v.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
    }

    #[test]
    fn a_valid_id_number_parses_and_masks() {
        // 11010519491231002X is the standard's own example.
        let id = IdNumber::parse("11010519491231002x", today()).unwrap();
        assert_eq!(id.as_str(), "11010519491231002X");
        assert_eq!(id.masked(), "1101**********002X");
        assert_eq!(
            id.birth_date(),
            NaiveDate::from_ymd_opt(1949, 12, 31).unwrap()
        );
        assert_eq!(id.sex(), crate::domain::codes::Sex::Female);
    }

    #[test]
    fn id_number_errors_say_what_is_wrong() {
        let t = today();
        assert_eq!(
            IdNumber::parse("1101051949", t),
            Err(IdNumberError::Length(10))
        );
        assert!(matches!(
            IdNumber::parse("110105194912310021", t),
            Err(IdNumberError::CheckDigit {
                found: '1',
                expected: 'X'
            })
        ));
        assert!(matches!(
            IdNumber::parse("11010519491331002X", t),
            Err(IdNumberError::BirthDate(_))
        ));
        assert!(matches!(
            IdNumber::parse("1101052030010100XX", t),
            Err(IdNumberError::NotDigit { position: 17, .. })
        ));
        let future = format!(
            "11010520300101001{}",
            IdNumber::check_char("11010520300101001")
        );
        assert!(matches!(
            IdNumber::parse(&future, t),
            Err(IdNumberError::FutureBirth { .. })
        ));
        let msg = IdNumber::parse("110105194912310021", t)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("check digit"), "{msg}");
    }

    #[test]
    fn phones_parse_normalise_and_mask() {
        assert_eq!(
            Phone::parse("138 1234 5678").unwrap().as_str(),
            "13812345678"
        );
        assert_eq!(
            Phone::parse("+8613812345678").unwrap().masked(),
            "138****5678"
        );
        assert_eq!(
            Phone::parse("0794-8123456").unwrap().as_str(),
            "0794-8123456"
        );
        assert_eq!(
            Phone::parse("01088886666").unwrap().as_str(),
            "010-88886666"
        );
        assert!(Phone::parse("12812345678").is_err());
        assert!(Phone::parse("1381234567").is_err());
        assert!(Phone::parse("phone").is_err());
    }

    #[test]
    fn validator_collects_every_field() {
        let mut v = Validator::new();
        v.text("description", "  ", 500);
        v.text("title", &"长".repeat(81), 80);
        v.not_future_date(
            "visited_on",
            NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            today(),
        );
        let err = v.finish().unwrap_err();
        assert_eq!(err.problem("description"), Some(&Problem::Required));
        assert!(
            matches!(
                err.problem("title"),
                Some(Problem::TooLong { len: 81, max: 80 })
            ),
            "{err:?}"
        );
        assert!(err.for_field("title").unwrap().contains("at most 80"));
        assert!(err.for_field("visited_on").unwrap().contains("future"));
        assert!(err.to_string().contains("visited_on"));
    }
}
