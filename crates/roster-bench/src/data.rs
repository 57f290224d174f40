//! The generated directory: the same N users for every phase, so that the ceilings, the
//! import, `batch_add` and the searches all see identical rows.
//!
//! Names are Chinese (a surname and one or two given characters, each with its pinyin known
//! here, so that the pinyin queries are known to match) with an English name, a unique
//! e-mail, mobile, employee number and user id. Everything is derived from the row number by
//! a small deterministic generator, so two runs generate the same bytes.

use std::fmt::Write as _;

/// Common surnames with their pinyin (none of them polyphonic as a surname here).
const SURNAMES: &[(&str, &str)] = &[
    ("张", "zhang"),
    ("王", "wang"),
    ("李", "li"),
    ("刘", "liu"),
    ("陈", "chen"),
    ("杨", "yang"),
    ("黄", "huang"),
    ("赵", "zhao"),
    ("吴", "wu"),
    ("周", "zhou"),
    ("徐", "xu"),
    ("孙", "sun"),
    ("马", "ma"),
    ("朱", "zhu"),
    ("胡", "hu"),
    ("郭", "guo"),
    ("何", "he"),
    ("高", "gao"),
    ("林", "lin"),
    ("罗", "luo"),
];

/// Given-name characters with their pinyin (single readings only).
const GIVEN: &[(&str, &str)] = &[
    ("伟", "wei"),
    ("芳", "fang"),
    ("娜", "na"),
    ("敏", "min"),
    ("静", "jing"),
    ("丽", "li"),
    ("强", "qiang"),
    ("磊", "lei"),
    ("军", "jun"),
    ("洋", "yang"),
    ("勇", "yong"),
    ("艳", "yan"),
    ("杰", "jie"),
    ("涛", "tao"),
    ("明", "ming"),
    ("超", "chao"),
    ("秀", "xiu"),
    ("霞", "xia"),
    ("平", "ping"),
    ("刚", "gang"),
    ("桂", "gui"),
    ("华", "hua"),
    ("建", "jian"),
    ("文", "wen"),
    ("辉", "hui"),
    ("玲", "ling"),
    ("鹏", "peng"),
    ("宇", "yu"),
    ("浩", "hao"),
    ("凯", "kai"),
    ("婷", "ting"),
    ("雪", "xue"),
    ("琳", "lin"),
    ("晨", "chen"),
    ("欣", "xin"),
    ("博", "bo"),
    ("佳", "jia"),
    ("颖", "ying"),
    ("志", "zhi"),
    ("云", "yun"),
];

/// One generated user.
#[derive(Debug, Clone)]
pub(crate) struct GenUser {
    /// Row number, from 0.
    pub(crate) index: usize,
    /// Chinese name, e.g. 张伟明.
    pub(crate) name: String,
    /// Full pinyin of the name, e.g. zhangweiming.
    pub(crate) pinyin: String,
    /// Pinyin initials, e.g. zwm.
    pub(crate) initials: String,
    /// English name, e.g. "Weiming Zhang".
    pub(crate) en_name: String,
    /// Unique e-mail.
    pub(crate) email: String,
    /// Unique mobile in E.164.
    pub(crate) mobile: String,
    /// Unique employee number.
    pub(crate) employee_no: String,
    /// Unique custom user id.
    pub(crate) user_id: String,
}

/// splitmix64: a tiny, well-mixed deterministic generator, so runs are reproducible.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn capitalise(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    if let Some(c) = chars.next() {
        out.extend(c.to_uppercase());
    }
    out.extend(chars);
    out
}

/// Generates user number `i`.
pub(crate) fn user(i: usize) -> GenUser {
    let r = mix(i as u64);
    let (sur, sur_py) = SURNAMES[(r % SURNAMES.len() as u64) as usize];
    let (g1, g1_py) = GIVEN[((r >> 8) % GIVEN.len() as u64) as usize];
    // Two of three people have a two-character given name.
    let second =
        (!(r >> 16).is_multiple_of(3)).then(|| GIVEN[((r >> 24) % GIVEN.len() as u64) as usize]);
    let mut name = format!("{sur}{g1}");
    let mut given_py = g1_py.to_owned();
    let mut initials = format!("{}{}", &sur_py[..1], &g1_py[..1]);
    if let Some((g2, g2_py)) = second {
        name.push_str(g2);
        given_py.push_str(g2_py);
        initials.push_str(&g2_py[..1]);
    }
    let pinyin = format!("{sur_py}{given_py}");
    GenUser {
        index: i,
        en_name: format!("{} {}", capitalise(&given_py), capitalise(sur_py)),
        email: format!("{pinyin}.{i}@corp.example.com"),
        mobile: format!("+8613{i:09}"),
        employee_no: format!("E{i:08}"),
        user_id: format!("u{i:08}"),
        name,
        pinyin,
        initials,
    }
}

/// All users `0..n`.
pub(crate) fn users(n: usize) -> Vec<GenUser> {
    (0..n).map(user).collect()
}

fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

/// One NDJSON line of the bulk-import format (see README "Bulk import API").
pub(crate) fn import_line(u: &GenUser, out: &mut String) {
    let _ = writeln!(
        out,
        "{{\"name\":{},\"en_name\":{},\"email\":{},\"mobile\":{},\"employee_no\":{},\"user_id\":{}}}",
        json_str(&u.name),
        json_str(&u.en_name),
        json_str(&u.email),
        json_str(&u.mobile),
        json_str(&u.employee_no),
        json_str(&u.user_id),
    );
}

/// The whole NDJSON upload.
pub(crate) fn import_ndjson(users: &[GenUser]) -> Vec<u8> {
    let mut out = String::with_capacity(users.len() * 200);
    for u in users {
        import_line(u, &mut out);
    }
    out.into_bytes()
}

/// One user of a Feishu v2 `batch_add` body.
pub(crate) fn batch_add_user(u: &GenUser) -> serde_json::Value {
    serde_json::json!({
        "name": u.name,
        "en_name": u.en_name,
        "email": u.email,
        "mobile": u.mobile,
        "employee_no": u.employee_no,
        "user_id": u.user_id,
        "departments": ["0"],
    })
}

/// The search queries, by kind, chosen from generated users so that each is known to match.
pub(crate) fn search_queries(users: &[GenUser]) -> Vec<(&'static str, String)> {
    let n = users.len().max(1);
    let pick = |k: u64| &users[(mix(k ^ 0x5EED) % n as u64) as usize];
    let mut q = Vec::new();
    for k in 0..8u64 {
        let u = pick(k);
        // Latin substring: the middle of an e-mail's local part (crosses name and number).
        let local = u.email.split('@').next().unwrap_or_default();
        let start = local.len() / 3;
        let end = (start + 6).min(local.len());
        q.push(("substring", local[start..end].to_owned()));
        // Digits from the middle of a mobile.
        q.push(("substring", u.mobile[6..12].to_owned()));
        // CJK: the given name (a substring of the full name) and the full name.
        let given: String = u.name.chars().skip(1).collect();
        q.push(("cjk", given));
        q.push(("cjk", u.name.clone()));
        // Pinyin: full, a prefix and the initials.
        q.push(("pinyin", u.pinyin.clone()));
        q.push(("pinyin", u.pinyin[..(u.pinyin.len() / 2).max(2)].to_owned()));
        q.push(("pinyin", u.initials.clone()));
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_deterministic_and_unique_where_they_must_be() {
        let a = users(2000);
        let b = users(2000);
        assert_eq!(a[1234].name, b[1234].name);
        let mut emails: Vec<_> = a.iter().map(|u| u.email.clone()).collect();
        emails.sort();
        emails.dedup();
        assert_eq!(emails.len(), 2000);
        assert!(a.iter().all(|u| u.mobile.len() == 14));
        assert!(a.iter().all(|u| u.initials.len() == u.name.chars().count()));
    }

    #[test]
    fn ndjson_lines_parse() {
        let body = import_ndjson(&users(3));
        let text = String::from_utf8(body).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["name"].as_str().is_some_and(|s| !s.is_empty()));
        }
        assert_eq!(text.lines().count(), 3);
    }
}
