//! Validation that says which field is wrong and why.
//!
//! Input is parsed into domain types at the edge ([`IdNumber::parse`], [`Phone::parse`],
//! [`GeoPoint::new`](super::geo::GeoPoint::new)); a [`Validator`] collects every problem of a
//! form at once so the UI can show each message beside its field.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field's path, e.g. `location.lon` or `parties[1].phone`.
    pub field: String,
    /// Why it is wrong, in words a person can act on.
    pub reason: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
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
    pub fn single(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ValidationErrors {
            errors: vec![FieldError {
                field: field.into(),
                reason: reason.into(),
            }],
        }
    }

    /// The reason given for `field`, if any (what the UI shows beside it).
    pub fn for_field(&self, field: &str) -> Option<&str> {
        self.errors
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.reason.as_str())
    }

    /// Prefixes every field path, for errors of a nested value (`parties[2]`).
    pub fn nest(mut self, prefix: &str) -> Self {
        for e in &mut self.errors {
            e.field = format!("{prefix}.{}", e.field);
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

    pub fn error(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError {
            field: field.into(),
            reason: reason.into(),
        });
    }

    /// A required text: present and not only whitespace, at most `max` characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        if value.trim().is_empty() {
            self.error(field, "is required");
        } else if value.chars().count() > max {
            self.error(
                field,
                format!(
                    "is {} characters long; at most {max} allowed",
                    value.chars().count()
                ),
            );
        }
    }

    /// An optional text of at most `max` characters.
    pub fn optional_text(&mut self, field: &str, value: Option<&str>, max: usize) {
        if let Some(v) = value
            && v.chars().count() > max
        {
            self.error(
                field,
                format!(
                    "is {} characters long; at most {max} allowed",
                    v.chars().count()
                ),
            );
        }
    }

    /// A date that must not lie after `today`.
    pub fn not_future_date(&mut self, field: &str, value: NaiveDate, today: NaiveDate) {
        if value > today {
            self.error(
                field,
                format!("{value} is in the future (today is {today})"),
            );
        }
    }

    /// A moment that must not lie after `now` (a few minutes of clock drift are tolerated).
    pub fn not_future_time(&mut self, field: &str, value: DateTime<Utc>, now: DateTime<Utc>) {
        if value > now + chrono::Duration::minutes(5) {
            self.error(
                field,
                format!(
                    "{} is in the future (now is {})",
                    value.to_rfc3339(),
                    now.to_rfc3339()
                ),
            );
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
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
        assert_eq!(err.for_field("description"), Some("is required"));
        assert!(err.for_field("title").unwrap().contains("at most 80"));
        assert!(err.for_field("visited_on").unwrap().contains("future"));
        assert!(err.to_string().contains("visited_on"));
    }
}
