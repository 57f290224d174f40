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

    /// Reads one NDJSON line: a JSON object whose keys are field names, each once, and
    /// whose values are strings, whole numbers, null, or (for `department_ids`) an array
    /// of strings.
    pub fn from_json(line: &[u8]) -> Result<Self, ItemError> {
        Self::from_json_with(line, |key| {
            field_position(key)
                .map(|p| FIELDS[p])
                .ok_or_else(|| format_error(key, format!("unknown field {key:?}")))
        })
    }

    /// Reads one NDJSON line whose keys `field_of` turns into fields (`roster import` maps
    /// a file's own key names as it maps CSV columns). A key sent twice, or two keys that
    /// give one field, fail the row: either way one value would silently replace the
    /// other. A boolean fails too: the fields are text, and storing `true` as the text
    /// "true" would keep a value its sender most likely never meant as a name or a city.
    pub fn from_json_with(
        line: &[u8],
        mut field_of: impl FnMut(&str) -> Result<&'static str, ItemError>,
    ) -> Result<Self, ItemError> {
        // A UTF-8 byte order mark (which editors put at the start of a file) is not JSON;
        // it cannot start a valid line either, so it is dropped wherever it appears.
        let line = line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line);
        let members: Members = serde_json::from_slice(line).map_err(|e| match e.classify() {
            // The only data error reading `Members` can meet is a line that is valid
            // JSON but no object (its members are read as any JSON value).
            serde_json::error::Category::Data => format_error("row", "a row must be a JSON object"),
            _ => format_error("row", format!("not JSON: {e}")),
        })?;
        if let Some(key) = members.repeated {
            return Err(format_error(
                &key,
                format!("the key {key:?} appears more than once in this row; send it once"),
            ));
        }
        let mut row = RawRow::default();
        // The key each field came from, to name both in the error of a second one.
        let mut given: [Option<String>; FIELDS.len()] = Default::default();
        for (k, v) in members.pairs {
            let field = field_of(&k)?;
            let pos = field_position(field)
                .ok_or_else(|| format_error(field, format!("unknown field {field:?}")))?;
            if let Some(first) = &given[pos] {
                return Err(format_error(
                    field,
                    format!("the keys {first:?} and {k:?} both give this field; keep one"),
                ));
            }
            let text = match v {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s,
                serde_json::Value::Number(n) => whole_number(field, &n)?,
                serde_json::Value::Bool(b) => {
                    return Err(format_error(
                        field,
                        format!(
                            "must be a string or a number, not the boolean {b}; \
                             send text as a JSON string"
                        ),
                    ))
                }
                serde_json::Value::Array(items) if field == "department_ids" => {
                    let mut parts = Vec::with_capacity(items.len());
                    for item in items {
                        match item {
                            serde_json::Value::String(s) => parts.push(s),
                            serde_json::Value::Number(n) => {
                                parts.push(whole_number(field, &n)?);
                            }
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
                _ => return Err(format_error(field, "must be a string or a number")),
            };
            row.set(field, &text)?;
            given[pos] = Some(k);
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

/// The members of one NDJSON row, in the order sent. serde_json's own map keeps only the
/// last of two members with one name, which would hide a repeated key; read member by
/// member, the first name that comes again is kept here for `from_json_with` to refuse.
struct Members {
    pairs: Vec<(String, serde_json::Value)>,
    repeated: Option<String>,
}

impl<'de> serde::Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Members;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Members, A::Error> {
                let mut pairs: Vec<(String, serde_json::Value)> = Vec::new();
                let mut names = std::collections::HashSet::new();
                let mut repeated = None;
                // Every member is read, a repeated one too, so that a syntax error later
                // in the line is still reported as one.
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value::<serde_json::Value>()?;
                    if !names.insert(key.clone()) {
                        repeated.get_or_insert(key);
                        continue;
                    }
                    pairs.push((key, value));
                }
                Ok(Members { pairs, repeated })
            }
        }
        deserializer.deserialize_map(Visit)
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
        Ok(_) => match badly_quoted_cell(bytes, &record) {
            None => Ok(record),
            Some(cell) => Err(format!(
                "cell {cell} is badly quoted: a quote inside a quoted cell must be doubled \
                 (\"\"), and nothing but spaces may come between a cell's closing quote and \
                 the next comma or the line end"
            )),
        },
        Err(e) => Err(match e.kind() {
            csv::ErrorKind::Utf8 { err, .. } => format!(
                "cell {} is not valid UTF-8; send the file as UTF-8",
                err.field() + 1
            ),
            _ => format!("bad CSV: {e}"),
        }),
    }
}

/// The first cell (counted from 1) of a record whose raw bytes are not the cells the `csv`
/// crate read from them, written the one way RFC 4180 allows; `None` when every cell is.
///
/// The crate has no strict mode: in `"ab"c"` it takes the quote after `ab` as the end of
/// the quoted cell, then reads `c"` on as plain text, and gives `abc"`, which is not what
/// the sender meant (most likely `ab"c`); a quote that never closes before the record ends
/// is taken as closed. Neither is an error it reports, and nothing in its record tells
/// them apart from a well-formed cell. So each cell is written back as it must appear: a
/// cell that starts with a quote as `"` + the text with each quote doubled + `"` (spaces
/// after the closing quote are let be, see `spelled`), any other as its text unchanged (a quote inside an unquoted cell, as in `O"Brien`, is an
/// ordinary character that the crate keeps as it is). Cells are separated by a comma, and
/// the crate's reading is faithful exactly when these spellings, joined, are the record's
/// bytes. This is no second parser: the crate decides where cells start and what they
/// hold, and this only checks that its answer needed none of its lenient guesses.
fn badly_quoted_cell(raw: &[u8], record: &csv::StringRecord) -> Option<usize> {
    // The crate drops a UTF-8 byte order mark at the start of what it reads (each record is
    // read on its own, so at the start of any record) before it reads the first cell.
    let mut rest = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
    for (i, cell) in record.iter().enumerate() {
        if i > 0 {
            match rest.strip_prefix(b",") {
                Some(r) => rest = r,
                // Cell `i` (counted from 1) ran on past where the crate ended it.
                None => return Some(i),
            }
        }
        match spelled(rest, cell.as_bytes()) {
            Some(r) => rest = r,
            None => return Some(i + 1),
        }
    }
    // The splitter leaves no line end on a record, but a caller may: only line-end bytes
    // may follow the last cell.
    if rest.iter().all(|&b| b == b'\r' || b == b'\n') {
        None
    } else {
        Some(record.len().max(1))
    }
}

/// What follows `cell` in `raw` when `raw` starts with the one spelling RFC 4180 allows
/// for it (quoted when `raw` starts with a quote); `None` when it does not.
fn spelled<'r>(raw: &'r [u8], cell: &[u8]) -> Option<&'r [u8]> {
    let Some(mut rest) = raw.strip_prefix(b"\"") else {
        return raw.strip_prefix(cell);
    };
    // Inside the quotes every byte of the cell is written as itself, a quote doubled;
    // the first place where the record holds a lone quote instead is the closing quote.
    let mut inside = 0;
    for &b in cell {
        let next = if b == b'"' {
            rest.strip_prefix(b"\"\"")?
        } else if let Some(next) = rest.strip_prefix(&[b]) {
            next
        } else {
            break;
        };
        rest = next;
        inside += 1;
    }
    rest = rest.strip_prefix(b"\"")?;
    // The crate appends what follows the closing quote to the cell. Spaces or tabs there
    // (`"Ann" ,`) change nothing that is stored, since values are trimmed when a row is
    // read, so they are let be; anything else (`"ab"c"`) would be stored altered.
    let after = &cell[inside..];
    if !after.iter().all(|&b| b == b' ' || b == b'\t') {
        return None;
    }
    rest.strip_prefix(after)
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
    fn json_booleans_do_not_stand_for_text() {
        for line in [
            r#"{"name":true,"user_id":"b1"}"#,
            r#"{"name":"A","city":false}"#,
            r#"{"name":"A","department_ids":[true]}"#,
        ] {
            let e = RawRow::from_json(line.as_bytes()).unwrap_err();
            assert_eq!(e.kind, "dialect", "{line}: {e:?}");
            assert!(
                e.detail.starts_with("name:")
                    || e.detail.starts_with("city:")
                    || e.detail.starts_with("department_ids:"),
                "{line}: {e:?}"
            );
        }
        let e = RawRow::from_json(br#"{"name":true}"#).unwrap_err();
        assert!(e.detail.contains("boolean true"), "{e:?}");
        // Numbers and null still read as before.
        let row = RawRow::from_json(br#"{"name":"A","employee_no":42,"city":null}"#).unwrap();
        assert_eq!(
            (row.get("employee_no"), row.get("city")),
            (Some("42"), None)
        );
    }

    #[test]
    fn a_json_key_sent_twice_fails_the_row() {
        for line in [
            r#"{"name":"first","name":"second","user_id":"dupkey1"}"#,
            r#"{"name":"first","user_id":"d","name":null}"#,
            // The same name once escaped is the same key.
            r#"{"name":"first","n\u0061me":"second"}"#,
        ] {
            let e = RawRow::from_json(line.as_bytes()).unwrap_err();
            assert!(
                e.detail.starts_with("name:") && e.detail.contains("more than once"),
                "{line}: {e:?}"
            );
        }
        // A repeated unknown key is still a refused row, whichever error names it.
        assert!(RawRow::from_json(br#"{"name":"A","x":1,"x":2}"#).is_err());
        // Non-objects and broken JSON keep their own errors.
        let e = RawRow::from_json(b"[1,2]").unwrap_err();
        assert!(e.detail.contains("must be a JSON object"), "{e:?}");
        let e = RawRow::from_json(br#"{"name":"A","name":"B""#).unwrap_err();
        assert!(e.detail.contains("not JSON"), "{e:?}");
        let e = RawRow::from_json(br#"{"name":"A"} x"#).unwrap_err();
        assert!(e.detail.contains("not JSON"), "{e:?}");
    }

    #[test]
    fn two_json_keys_for_one_field_fail_the_row() {
        let field_of = |k: &str| match k {
            "phone" | "mobile" => Ok("mobile"),
            "name" => Ok("name"),
            other => Err(format_error(other, "unknown")),
        };
        let line = br#"{"name":"A","mobile":"+8613800000000","phone":"+8613800000001"}"#;
        let e = RawRow::from_json_with(line, field_of).unwrap_err();
        assert!(e.detail.starts_with("mobile:"), "{e:?}");
        let row = RawRow::from_json_with(br#"{"name":"A","phone":"+86138"}"#, field_of).unwrap();
        assert_eq!(row.get("mobile"), Some("+86138"));
    }

    #[test]
    fn badly_quoted_csv_cells_fail_instead_of_being_altered() {
        for (raw, cell) in [
            (r#""ab"c",q1x,"x""y""#, 1),
            (r#"q1x,"ab"c""#, 2),
            (r#"a,"b"x"#, 2),
            (r#"a,"never closed"#, 2),
            (r#""a""b,c"#, 1),
            (r#"a,"b" x,c"#, 2),
            (r#"a,"b"  "c",d"#, 2),
        ] {
            let e = csv_record(raw.as_bytes()).unwrap_err();
            assert!(
                e.starts_with(&format!("cell {cell} is badly quoted")),
                "{raw}: {e}"
            );
        }
    }

    #[test]
    fn well_formed_csv_records_read_as_before() {
        for (raw, cells) in [
            (r#""ab""c",q1x,"x""y""#, vec![r#"ab"c"#, "q1x", r#"x"y"#]),
            (r#"O"Brien,x,"#, vec![r#"O"Brien"#, "x", ""]),
            (
                "\"Smith, Ann\",\"New\nYork\",\"\"",
                vec!["Smith, Ann", "New\nYork", ""],
            ),
            (r#""""""#, vec![r#"""#]),
            (" \"a\" ,b", vec![r#" "a" "#, "b"]),
            ("\u{feff}name,city", vec!["name", "city"]),
            ("\u{feff}\"na\"\"me\",city", vec!["na\"me", "city"]),
            ("a,b\r", vec!["a", "b"]),
            // Spaces after a closing quote are trimmed away with the value's own.
            ("a,\"b \" \t,c", vec!["a", "b  \t", "c"]),
        ] {
            let record = csv_record(raw.as_bytes()).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(record.iter().collect::<Vec<_>>(), cells, "{raw:?}");
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
