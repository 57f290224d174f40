//! Value types for user and department fields. Each is parsed once at the edge and trusted
//! afterwards; a parse failure names the field.

use std::fmt;

use crate::error::CoreError;

/// Checks that a text is non-empty (when required) and at most `max` characters.
pub fn bounded_text(
    field: &'static str,
    value: &str,
    max: usize,
    required: bool,
) -> Result<String, CoreError> {
    if required && value.trim().is_empty() {
        return Err(CoreError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max {
        return Err(CoreError::invalid(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    Ok(value.to_owned())
}

/// The join times accepted, unix seconds: 1900-01-01 to 9999-12-31. Every front door keeps
/// to it, so that whatever one stores another (the bulk import of an export) reads back.
pub const JOIN_TIME_RANGE: std::ops::RangeInclusive<i64> = -2_208_988_800..=253_402_300_799;

/// A join time (unix seconds) within `JOIN_TIME_RANGE`.
pub fn join_time(seconds: i64) -> Result<i64, CoreError> {
    if JOIN_TIME_RANGE.contains(&seconds) {
        Ok(seconds)
    } else {
        Err(CoreError::invalid(
            "join_time",
            "must be unix seconds from 1900-01-01 to 9999-12-31",
        ))
    }
}

/// An e-mail address, kept as given; compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Accepts `local@domain.tld` with no spaces, at most 254 characters. This is the check
    /// directories apply in practice; full RFC 5322 parsing admits addresses no mail system
    /// delivers to.
    pub fn parse(field: &'static str, s: &str) -> Result<Self, CoreError> {
        let s = s.trim();
        let bad = || CoreError::invalid(field, "is not a valid e-mail address");
        if s.len() > 254 || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        if local.is_empty() || local.len() > 64 || local.contains('@') {
            return Err(bad());
        }
        let labels: Vec<&str> = domain.split('.').collect();
        if labels.len() < 2
            || labels.iter().any(|l| {
                l.is_empty()
                    || l.starts_with('-')
                    || l.ends_with('-')
                    || !l.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
        {
            return Err(bad());
        }
        Ok(Self(s.to_owned()))
    }

    /// Wraps a value read back from the store.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form under which uniqueness is checked.
    pub fn folded(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mobile number, normalised to E.164 (`+8613011111111`). A number without a country
/// code is read as a mainland China number, as Feishu does.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mobile(String);

impl Mobile {
    /// Parses and normalises a phone number with the `phonenumber` crate (libphonenumber's
    /// metadata), rejecting numbers that are not valid for their region.
    pub fn parse(field: &'static str, s: &str) -> Result<Self, CoreError> {
        let bad = || CoreError::invalid(field, "is not a valid mobile number");
        let trimmed = s.trim();
        if trimmed.is_empty() || trimmed.len() > 32 {
            return Err(bad());
        }
        // libphonenumber reads leniently: it turns letters into keypad digits, drops an
        // extension and trailing junk, and skips a `tel:` prefix, so a mistyped number
        // ("138-0013-8OO4", "1380013800A") would become somebody else's valid one. Only
        // digits, a leading `+` and the usual separators are a number as written.
        let (_, rest) = trimmed.split_at(usize::from(trimmed.starts_with('+')));
        if !rest
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.'))
        {
            return Err(bad());
        }
        let region = if trimmed.starts_with('+') {
            None
        } else {
            Some(phonenumber::country::Id::CN)
        };
        let number = phonenumber::parse(region, trimmed).map_err(|_| bad())?;
        if !phonenumber::is_valid(&number) {
            return Err(bad());
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    /// Wraps a value read back from the store.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// The E.164 form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Mobile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Country(String);

/// The 249 codes ISO 3166-1 assigns, sorted (read off the standard's list as pycountry
/// 26.2.16 carries it). libphonenumber's list of regions, used before, is not this list: it
/// lacks territories without a telephone plan (AQ, BV, HM) and has codes ISO does not
/// assign (AC, TA, XK).
const ISO_3166_ALPHA2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

impl Country {
    /// Accepts a code that ISO 3166-1 assigns, in any case.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        let upper = s.trim().to_ascii_uppercase();
        if ISO_3166_ALPHA2.binary_search(&upper.as_str()).is_ok() {
            Ok(Self(upper))
        } else {
            Err(CoreError::invalid(
                "country",
                "must be an ISO 3166-1 alpha-2 code",
            ))
        }
    }

    /// Wraps a value read back from the store.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Gender as Feishu numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Gender {
    /// Not disclosed (0).
    #[default]
    Secret,
    /// Male (1).
    Male,
    /// Female (2).
    Female,
    /// Other (3).
    Other,
}

impl Gender {
    /// From the wire number.
    pub fn from_code(code: i64) -> Result<Self, CoreError> {
        Ok(match code {
            0 => Gender::Secret,
            1 => Gender::Male,
            2 => Gender::Female,
            3 => Gender::Other,
            _ => return Err(CoreError::invalid("gender", "must be 0, 1, 2 or 3")),
        })
    }

    /// To the wire number.
    pub fn code(self) -> i64 {
        match self {
            Gender::Secret => 0,
            Gender::Male => 1,
            Gender::Female => 2,
            Gender::Other => 3,
        }
    }
}

/// Employment type as Feishu numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EmployeeType {
    /// Regular employee (1).
    #[default]
    Regular,
    /// Intern (2).
    Intern,
    /// Outsourced (3).
    Outsourced,
    /// Contractor (4).
    Contractor,
    /// Consultant (5).
    Consultant,
}

impl EmployeeType {
    /// From the wire number.
    pub fn from_code(code: i64) -> Result<Self, CoreError> {
        Ok(match code {
            1 => EmployeeType::Regular,
            2 => EmployeeType::Intern,
            3 => EmployeeType::Outsourced,
            4 => EmployeeType::Contractor,
            5 => EmployeeType::Consultant,
            _ => return Err(CoreError::invalid("employee_type", "must be 1 to 5")),
        })
    }

    /// To the wire number.
    pub fn code(self) -> i64 {
        match self {
            EmployeeType::Regular => 1,
            EmployeeType::Intern => 2,
            EmployeeType::Outsourced => 3,
            EmployeeType::Contractor => 4,
            EmployeeType::Consultant => 5,
        }
    }
}

/// The BI user type of the Quick BI dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserType {
    /// Developer (1): may build content.
    Developer,
    /// Visitor (2): may only view.
    Visitor,
    /// Analyst (3): may analyse existing data.
    Analyst,
}

impl UserType {
    /// From the wire number.
    pub fn from_code(code: i64) -> Result<Self, CoreError> {
        Ok(match code {
            1 => UserType::Developer,
            2 => UserType::Visitor,
            3 => UserType::Analyst,
            _ => return Err(CoreError::invalid("user_type", "must be 1, 2 or 3")),
        })
    }

    /// To the wire number.
    pub fn code(self) -> i64 {
        match self {
            UserType::Developer => 1,
            UserType::Visitor => 2,
            UserType::Analyst => 3,
        }
    }
}

/// How a new account becomes usable (Huawei Workspace's `active_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Activation {
    /// The user activates through an invitation link and sets a password.
    #[default]
    ByUser,
    /// The administrator set a password; the account is active at once.
    ByAdmin,
}

impl Activation {
    /// Stable name for storage and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Activation::ByUser => "user",
            Activation::ByAdmin => "admin",
        }
    }

    /// Inverse of `as_str`.
    pub fn from_str_opt(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Activation::ByUser),
            "admin" => Some(Activation::ByAdmin),
            _ => None,
        }
    }
}

/// A login name (Huawei's `user_name`, SCIM's `userName`): 1-64 characters of letters,
/// digits and `_-.@`, unique case-insensitively within a tenant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username(String);

impl Username {
    /// Parses a login name.
    pub fn parse(s: &str) -> Result<Self, CoreError> {
        if s.is_empty() || s.len() > 64 {
            return Err(CoreError::invalid("username", "must be 1 to 64 characters"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
        {
            return Err(CoreError::invalid(
                "username",
                "may hold only letters, digits and _-.@",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// Wraps a value read back from the store.
    pub fn from_trusted(s: String) -> Self {
        Self(s)
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form under which uniqueness is checked.
    pub fn folded(&self) -> String {
        self.0.to_ascii_lowercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_without_at_sign_is_rejected() {
        assert!(Email::parse("email", "zhangsan.example.com").is_err());
        assert!(Email::parse("email", "zhang san@example.com").is_err());
        assert!(Email::parse("email", "zhangsan@localhost").is_err());
        assert!(Email::parse("email", "zhangsan@example.com").is_ok());
    }

    #[test]
    fn email_error_names_the_field() {
        let err = Email::parse("enterprise_email", "nope").unwrap_err();
        assert!(matches!(
            err,
            CoreError::Invalid {
                field: "enterprise_email",
                ..
            }
        ));
    }

    #[test]
    fn mainland_mobile_is_normalised_to_e164() {
        let a = Mobile::parse("mobile", "13011111111").unwrap();
        let b = Mobile::parse("mobile", "+8613011111111").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "+8613011111111");
    }

    #[test]
    fn foreign_mobile_keeps_its_country() {
        let m = Mobile::parse("mobile", "+14155552671").unwrap();
        assert_eq!(m.as_str(), "+14155552671");
    }

    #[test]
    fn nonsense_mobile_is_rejected() {
        assert!(Mobile::parse("mobile", "12").is_err());
        assert!(Mobile::parse("mobile", "abc").is_err());
        assert!(Mobile::parse("mobile", "").is_err());
    }

    #[test]
    fn mobile_with_letters_or_an_extension_is_rejected_not_rewritten() {
        for s in [
            "138-0013-8OO4",
            "1380013800A",
            "+8613800138002 ext. 99",
            "+8613800138001x",
            "tel:+86-138-0013-8005",
            "+86(138)00138006!!",
            "++8613800138006",
        ] {
            assert!(Mobile::parse("mobile", s).is_err(), "{s} must be refused");
        }
        for s in ["+86 138-0013-8004", "(138) 0013.8004", "0086 13800138004"] {
            assert_eq!(
                Mobile::parse("mobile", s)
                    .map(|m| m.as_str().to_owned())
                    .ok(),
                Some("+8613800138004".to_owned()),
                "{s} is a number as written"
            );
        }
    }

    #[test]
    fn country_must_be_alpha2() {
        assert_eq!(Country::parse("cn").unwrap().as_str(), "CN");
        assert!(Country::parse("CHN").is_err());
        assert!(Country::parse("ZZ").is_err());
        // Territories without a telephone plan are countries too; codes outside the
        // standard are not.
        assert_eq!(Country::parse("aq").unwrap().as_str(), "AQ");
        assert!(Country::parse("BV").is_ok() && Country::parse("HM").is_ok());
        assert!(Country::parse("AC").is_err() && Country::parse("XK").is_err());
        assert!(ISO_3166_ALPHA2.windows(2).all(|w| w[0] < w[1]), "sorted");
    }

    #[test]
    fn enums_reject_unknown_codes() {
        assert!(Gender::from_code(4).is_err());
        assert!(EmployeeType::from_code(0).is_err());
        assert!(UserType::from_code(9).is_err());
        assert_eq!(EmployeeType::from_code(3).unwrap().code(), 3);
    }

    #[test]
    fn bounded_text_counts_characters_not_bytes() {
        assert!(bounded_text("name", &"张".repeat(255), 255, true).is_ok());
        assert!(bounded_text("name", &"张".repeat(256), 255, true).is_err());
        assert!(bounded_text("name", "  ", 255, true).is_err());
    }
}
