//! The import row format: a flat user record, the same for NDJSON, CSV (and, through
//! `roster import`, XLSX), and the conversion of a row into the core's `NewUser` with the
//! same value parsers every other front door uses.
//!
//! Fields (all text; empty means absent): `name` (required), `user_id`, `email`,
//! `enterprise_email`, `mobile` (E.164), `department_ids` (custom department ids or
//! `od-…` open ids, separated by `;` or `,`, or a JSON array; the first is the primary;
//! empty means the root), `employee_no`, `en_name`, `nickname`, `gender` (0-3 or
//! `secret`/`male`/`female`/`other`), `city`, `country` (ISO 3166-1 alpha-2),
//! `work_station`, `job_title`, `join_time` (unix seconds or `YYYY-MM-DD`),
//! `leader_user_id` (a user that exists, or one in an earlier row or the same chunk),
//! `employee_type` (1-5 or `regular`/`intern`/`outsourced`/`contractor`/`consultant`),
//! `username`, `description`.

use std::collections::HashMap;

use roster_core::user::UserProfile;
use roster_core::values::{
    bounded_text, Country, Email, EmployeeType, Gender, Mobile, Username, JOIN_TIME_RANGE,
};
use roster_core::{
    Caller, CoreError, DeptKey, DeptLookup, Directory, ItemError, Membership, NewUser, UserId,
    UserLookup,
};

/// Every field of a row, in the order exports write them.
pub const FIELDS: &[&str] = &[
    "user_id",
    "name",
    "en_name",
    "nickname",
    "email",
    "enterprise_email",
    "mobile",
    "department_ids",
    "leader_user_id",
    "employee_no",
    "employee_type",
    "job_title",
    "gender",
    "city",
    "country",
    "work_station",
    "join_time",
    "username",
    "description",
];

/// Most bytes one row may take (a line of NDJSON, a record of CSV).
pub const MAX_ROW_BYTES: usize = 64 * 1024;

/// Most departments one row may name.
const MAX_ROW_DEPARTMENTS: usize = 50;

/// One row's raw values by field position in `FIELDS`.
#[derive(Debug, Clone, Default)]
pub struct RawRow {
    values: [Option<String>; FIELDS.len()],
}

/// A row that could not be read: its error in the stored form.
pub fn format_error(field: &str, message: impl std::fmt::Display) -> ItemError {
    ItemError::dialect("format", format!("{field}: {message}"))
}

impl RawRow {
    /// Sets a field by name; unknown names are refused so that a typo is never silently
    /// dropped. Empty values are absent.
    pub fn set(&mut self, name: &str, value: &str) -> Result<(), ItemError> {
        let pos = field_position(name)
            .ok_or_else(|| format_error(name, format!("unknown field {name:?}")))?;
        let value = value.trim();
        if value.contains('\0') {
            return Err(format_error(name, roster_http::NUL_MESSAGE));
        }
        self.values[pos] = (!value.is_empty()).then(|| value.to_owned());
        Ok(())
    }

    /// A field's value.
    pub fn get(&self, name: &str) -> Option<&str> {
        field_position(name).and_then(|p| self.values[p].as_deref())
    }

    /// Reads one NDJSON line: a JSON object whose values are strings, numbers, booleans,
    /// null, or (for `department_ids`) an array of strings.
    pub fn from_json(line: &[u8]) -> Result<Self, ItemError> {
        // A UTF-8 byte order mark (which editors put at the start of a file) is not JSON;
        // it cannot start a valid line either, so it is dropped wherever it appears.
        let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        let value: serde_json::Value = serde_json::from_slice(line)
            .map_err(|e| format_error("row", format!("not JSON: {e}")))?;
        let serde_json::Value::Object(map) = value else {
            return Err(format_error("row", "a row must be a JSON object"));
        };
        let mut row = RawRow::default();
        for (k, v) in map {
            let text = match v {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => whole_number(&k, &n)?,
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Array(items) if k == "department_ids" => {
                    let mut parts = Vec::with_capacity(items.len());
                    for item in items {
                        match item {
                            serde_json::Value::String(s) => parts.push(s),
                            serde_json::Value::Number(n) => parts.push(whole_number(&k, &n)?),
                            _ => {
                                return Err(format_error(
                                    "department_ids",
                                    "must hold department ids as strings",
                                ))
                            }
                        }
                    }
                    parts.join(";")
                }
                _ => return Err(format_error(&k, "must be a string or a number")),
            };
            row.set(&k, &text)?;
        }
        Ok(row)
    }

    /// Writes the row as one NDJSON line (without the newline), absent fields left out.
    pub fn to_json(&self) -> String {
        let mut map = serde_json::Map::new();
        for (name, value) in FIELDS.iter().zip(&self.values) {
            if let Some(v) = value {
                map.insert((*name).to_owned(), serde_json::Value::String(v.clone()));
            }
        }
        serde_json::Value::Object(map).to_string()
    }

    /// The values in `FIELDS` order, absent ones empty (for CSV).
    pub fn cells(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|v| v.as_deref().unwrap_or(""))
    }
}

/// A JSON number as the text of a field: only a whole number that JSON parsing kept
/// exactly. A fraction, an exponent or a number past 64 bits arrives as a float, whose
/// text (`1000.0`, `9.876543210987654e+19`) is not what the sender wrote, so it is refused
/// rather than stored altered; such a value is sent as a string.
fn whole_number(field: &str, n: &serde_json::Number) -> Result<String, ItemError> {
    if n.is_f64() {
        Err(format_error(
            field,
            format!("the number {n} is not a whole number that fits 64 bits; send it as a string"),
        ))
    } else {
        Ok(n.to_string())
    }
}

fn field_position(name: &str) -> Option<usize> {
    FIELDS.iter().position(|f| *f == name)
}

/// The columns of a CSV header, checked: every column must be a known field, once.
pub fn csv_header(record: &csv::StringRecord) -> Result<Vec<usize>, String> {
    let mut seen = vec![false; FIELDS.len()];
    let mut out = Vec::with_capacity(record.len());
    for (i, name) in record.iter().enumerate() {
        // A UTF-8 byte-order mark (spreadsheet exports write one) is not part of the name.
        let name = if i == 0 {
            name.trim_start_matches('\u{feff}')
        } else {
            name
        };
        let name = name.trim();
        let pos = field_position(name).ok_or_else(|| {
            format!(
                "unknown column {name:?}; columns must be among: {}",
                FIELDS.join(", ")
            )
        })?;
        if std::mem::replace(&mut seen[pos], true) {
            return Err(format!("column {name:?} appears twice"));
        }
        out.push(pos);
    }
    if !seen[field_position("name").unwrap_or_default()] {
        return Err("the header has no \"name\" column".into());
    }
    Ok(out)
}

/// Parses one CSV record that the splitter cut out of a stream or file. The error says
/// which cell, without the position the csv crate adds: each record is parsed on its own,
/// so that position is always "record 0, line 1" whatever the row, and the row number
/// beside the message is the true one.
pub fn csv_record(bytes: &[u8]) -> Result<csv::StringRecord, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(_) => Ok(record),
        Err(e) => Err(match e.kind() {
            csv::ErrorKind::Utf8 { err, .. } => format!(
                "cell {} is not valid UTF-8; send the file as UTF-8",
                err.field() + 1
            ),
            _ => format!("bad CSV: {e}"),
        }),
    }
}

/// The error of a row longer than `MAX_ROW_BYTES`. In CSV the usual cause is a quote that
/// opens a cell and never closes, which makes every later line part of this record: the
/// message says so, as the lines it swallowed are not reported as rows of their own.
pub fn too_long_row(csv: bool) -> ItemError {
    let hint = if csv {
        "; if a cell of this row opens a quote (\") that never closes, every later line was \
         read as part of this row"
    } else {
        ""
    };
    format_error("row", format!("longer than {MAX_ROW_BYTES} bytes{hint}"))
}

/// A CSV record under a checked header.
pub fn from_csv(columns: &[usize], record: &csv::StringRecord) -> Result<RawRow, ItemError> {
    if record.len() != columns.len() {
        return Err(format_error(
            "row",
            format!(
                "has {} cells where the header has {}",
                record.len(),
                columns.len()
            ),
        ));
    }
    let mut row = RawRow::default();
    for (&pos, cell) in columns.iter().zip(record.iter()) {
        let cell = cell.trim();
        // The same refusal as `set` makes for NDJSON rows: no store keeps a NUL, and
        // PostgreSQL refuses one outright, which would fail the whole chunk.
        if cell.contains('\0') {
            return Err(format_error(FIELDS[pos], roster_http::NUL_MESSAGE));
        }
        row.values[pos] = (!cell.is_empty()).then(|| cell.to_owned());
    }
    Ok(row)
}

/// Resolves department ids once per upload (an import names the same few departments
/// thousands of times).
pub struct Departments<'a> {
    dir: &'a Directory,
    caller: &'a Caller,
    seen: HashMap<String, Result<DeptKey, ItemError>>,
}

impl<'a> Departments<'a> {
    /// A resolver for the caller's tenant.
    pub fn new(dir: &'a Directory, caller: &'a Caller) -> Self {
        Self {
            dir,
            caller,
            seen: HashMap::new(),
        }
    }

    async fn key(&mut self, id: &str) -> Result<Result<DeptKey, ItemError>, CoreError> {
        if let Some(k) = self.seen.get(id) {
            return Ok(k.clone());
        }
        let lookup = if id.starts_with("od-") {
            DeptLookup::OpenId(id.to_owned())
        } else {
            DeptLookup::CustomId(id.to_owned())
        };
        let verdict = match self.dir.get_department(self.caller, &lookup).await {
            Ok(d) => Ok(d.key),
            Err(CoreError::Storage(e)) => return Err(CoreError::Storage(e)),
            Err(CoreError::NotFound { .. }) => {
                Err(ItemError::from_core(&CoreError::BadReference {
                    field: "department_ids",
                    reason: format!("department {id:?} does not exist").into(),
                }))
            }
            Err(other) => Err(ItemError::from_core(&other)),
        };
        if self.seen.len() < 100_000 {
            self.seen.insert(id.to_owned(), verdict.clone());
        }
        Ok(verdict)
    }
}

fn core(e: &CoreError) -> ItemError {
    ItemError::from_core(e)
}

fn text(row: &RawRow, field: &'static str, max: usize) -> Result<Option<String>, ItemError> {
    row.get(field)
        .map(|v| bounded_text(field, v, max, false))
        .transpose()
        .map_err(|e| core(&e))
}

fn code_or_name(
    row: &RawRow,
    field: &'static str,
    names: &[&str],
    first: i64,
) -> Result<Option<i64>, ItemError> {
    let Some(v) = row.get(field) else {
        return Ok(None);
    };
    if let Ok(n) = v.parse::<i64>() {
        return Ok(Some(n));
    }
    let lower = v.to_ascii_lowercase();
    names
        .iter()
        .position(|n| *n == lower)
        .map(|p| Some(first + p as i64))
        .ok_or_else(|| {
            core(&CoreError::invalid(
                field,
                format!("must be a number or one of {}", names.join(", ")),
            ))
        })
}

/// Unix seconds, or a `YYYY-MM-DD` date (midnight UTC) that exists in the calendar.
fn join_time(v: &str) -> Result<i64, ItemError> {
    let bad = || {
        core(&CoreError::invalid(
            "join_time",
            "must be unix seconds or a YYYY-MM-DD date, from 1900 to 9999",
        ))
    };
    if let Ok(n) = v.parse::<i64>() {
        return if JOIN_TIME_RANGE.contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let mut parts = v.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let (y, m, d): (i64, i64, i64) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days_in_month = match m {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    // 2024-02-30 is refused rather than read as 2024-03-01.
    if !(1900..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=days_in_month).contains(&d) {
        return Err(bad());
    }
    Ok(roster_core::days_from_civil(y, m, d) * 86_400)
}

/// Converts a row into a user with the core's value parsers; `notify` users start
/// unactivated (they get an invitation).
pub async fn to_new_user(
    row: &RawRow,
    notify: bool,
    depts: &mut Departments<'_>,
) -> Result<Result<NewUser, ItemError>, CoreError> {
    let parsed = parse_fields(row, notify);
    let (mut new, ids) = match parsed {
        Ok(p) => p,
        Err(e) => return Ok(Err(e)),
    };
    for (i, id) in ids.iter().enumerate() {
        match depts.key(id).await? {
            Ok(key) => new.profile.departments.push(Membership {
                department: key,
                user_order: 0,
                department_order: i as i64,
                is_primary: i == 0,
            }),
            Err(e) => return Ok(Err(e)),
        }
    }
    Ok(Ok(new))
}

/// Everything of a row but its departments, which need the store; returns the user and
/// the department ids to resolve.
fn parse_fields(row: &RawRow, notify: bool) -> Result<(NewUser, Vec<String>), ItemError> {
    let name = row
        .get("name")
        .ok_or_else(|| core(&CoreError::invalid("name", "is required")))?;
    let gender = code_or_name(row, "gender", &["secret", "male", "female", "other"], 0)?
        .map(Gender::from_code)
        .transpose()
        .map_err(|e| core(&e))?
        .unwrap_or_default();
    let employee_type = code_or_name(
        row,
        "employee_type",
        &[
            "regular",
            "intern",
            "outsourced",
            "contractor",
            "consultant",
        ],
        1,
    )?
    .map(EmployeeType::from_code)
    .transpose()
    .map_err(|e| core(&e))?
    .unwrap_or_default();
    let profile = UserProfile {
        name: bounded_text("name", name, 255, true).map_err(|e| core(&e))?,
        en_name: text(row, "en_name", 255)?,
        nickname: text(row, "nickname", 255)?,
        email: row
            .get("email")
            .map(|v| Email::parse("email", v))
            .transpose()
            .map_err(|e| core(&e))?,
        enterprise_email: row
            .get("enterprise_email")
            .map(|v| Email::parse("enterprise_email", v))
            .transpose()
            .map_err(|e| core(&e))?,
        mobile: row
            .get("mobile")
            .map(|v| Mobile::parse("mobile", v))
            .transpose()
            .map_err(|e| core(&e))?,
        mobile_visible: true,
        gender,
        city: text(row, "city", 100)?,
        country: row
            .get("country")
            .map(Country::parse)
            .transpose()
            .map_err(|e| core(&e))?,
        work_station: text(row, "work_station", 255)?,
        join_time: row.get("join_time").map(join_time).transpose()?,
        employee_no: text(row, "employee_no", 64)?,
        employee_type,
        job_title: text(row, "job_title", 100)?,
        username: row
            .get("username")
            .map(Username::parse)
            .transpose()
            .map_err(|e| core(&e))?,
        description: text(row, "description", 255)?,
        ..UserProfile::default()
    };
    let user_id = row
        .get("user_id")
        .map(UserId::parse)
        .transpose()
        .map_err(|e| core(&e))?;
    let ids: Vec<String> = row
        .get("department_ids")
        .map(|v| {
            v.split([';', ','])
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if ids.len() > MAX_ROW_DEPARTMENTS {
        return Err(core(&CoreError::invalid(
            "department_ids",
            format!("at most {MAX_ROW_DEPARTMENTS} departments"),
        )));
    }
    let leader = row
        .get("leader_user_id")
        .map(|v| UserLookup::UserId(v.to_owned()));
    Ok((
        NewUser {
            user_id,
            profile,
            leader,
            // Invited users join when they follow the link; others are active at once.
            activated: !notify,
        },
        ids,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_become_unix_seconds_at_midnight_utc() {
        assert_eq!(join_time("1970-01-01").unwrap(), 0);
        assert_eq!(join_time("2018-08-14").unwrap(), 1_534_204_800);
        assert_eq!(join_time("1534222800").unwrap(), 1_534_222_800);
        assert!(join_time("2018-13-01").is_err());
        assert!(join_time("2024-02-30").is_err(), "no such day");
        assert!(join_time("2023-02-29").is_err(), "not a leap year");
        assert_eq!(join_time("2024-02-29").unwrap(), 1_709_164_800);
        assert!(join_time("2000-02-29").is_ok() && join_time("1900-02-29").is_err());
        assert!(join_time("99999999999999").is_err(), "past the year 9999");
        assert!(join_time("yesterday").is_err());
    }

    #[test]
    fn unknown_fields_are_refused_not_dropped() {
        let e = RawRow::from_json(br#"{"name":"A","mail":"a@example.com"}"#).unwrap_err();
        assert!(e.detail.contains("unknown field"), "{e:?}");
    }

    #[test]
    fn a_json_row_after_a_byte_order_mark_reads() {
        let row = RawRow::from_json(b"\xEF\xBB\xBF{\"name\":\"b\",\"user_id\":\"bom\"}").unwrap();
        assert_eq!(row.get("user_id"), Some("bom"));
    }

    #[test]
    fn json_rows_accept_numbers_and_department_arrays() {
        let row =
            RawRow::from_json(br#"{"name":"A","gender":1,"department_ids":["d1","d2"]}"#).unwrap();
        assert_eq!(row.get("gender"), Some("1"));
        assert_eq!(row.get("department_ids"), Some("d1;d2"));
    }

    #[test]
    fn json_numbers_that_would_change_their_digits_are_refused() {
        let row = RawRow::from_json(br#"{"name":"A","employee_no":-1234567890123}"#).unwrap();
        assert_eq!(row.get("employee_no"), Some("-1234567890123"));
        for n in ["1e3", "12.50", "98765432109876543210"] {
            let line = format!(r#"{{"name":"A","employee_no":{n}}}"#);
            let e = RawRow::from_json(line.as_bytes()).unwrap_err();
            assert!(e.detail.starts_with("employee_no:"), "{n}: {e:?}");
        }
    }

    #[test]
    fn a_csv_cell_holding_a_nul_fails_its_row() {
        let columns = csv_header(&csv::StringRecord::from(vec!["name", "city"])).unwrap();
        let e = from_csv(&columns, &csv::StringRecord::from(vec!["A", "x\0y"])).unwrap_err();
        assert!(e.detail.starts_with("city:"), "{e:?}");
    }

    #[test]
    fn a_row_without_a_name_is_invalid() {
        let row = RawRow::from_json(br#"{"email":"a@example.com"}"#).unwrap();
        let e = parse_fields(&row, false).unwrap_err();
        assert_eq!((e.kind.as_str(), e.field.as_str()), ("invalid", "name"));
    }
}
