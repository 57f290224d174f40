//! Ranked user search (migration 0006; the order is defined in `roster_core::search`).
//!
//! The whole and suffix tiers walk `user_search_terms` (primary key `(tenant_id, term,
//! user_key)`, terms in byte order through `COLLATE "C"`) over the query's prefix range from
//! the cursor on. The substring tier reads users in key order from the cursor's key on, by
//! one of three plans chosen per query from a sample of the users' search texts
//! ([`TextSample`]): a walk of the tenant's users in key order that re-checks each row
//! (cheap when matches are dense), or the `pg_trgm` GIN index `users_search_block_trgm_idx`
//! asked for the query's rarest trigrams only (cheap when they are rare), either a block of
//! keys at a time from the cursor's (cheap when the page is near; migration 0017,
//! [`KEY_BLOCK_SHIFT`]) or over the whole table at once. The index covers
//! `roster_trigram_text(search_text)`, which spells the punctuation inside terms as letters
//! (migration 0015, [`PUNCTUATION`]), so that `jie.93` has the selective trigrams `e.9` and
//! `.93` rather than only `jie`. A candidate is kept only where
//! `roster_store_common::place_of` puts it, exactly as on SQLite. The term page and the
//! whole-table index statement run inside functions of migration 0018, so that they are
//! planned once per connection rather than on every search.
//!
//! Why not let the planner choose: it cannot see how many rows a trigram's posting list
//! holds, nor how many candidates a `LIKE` re-check throws away. Measured at a million users
//! (2026-12-06), plain `LIKE '%q%'` took 0.7-0.9 s for `000000` (every user holds the trigram
//! `000`, a thousand hold the query: a bitmap of a million candidates, sorted), 60-80 ms for
//! `ngting` (ten thousand matches sorted when a walk finds a page in 2 400 rows), and 4-6 ms
//! for `mafangting` (the posting lists of `ang` and `ing`, a third of all users, read in
//! full, where `maf` alone gives 1 200 candidates in 0.1 ms).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use roster_core::search::{SearchCursor, SearchQuery, SearchTier};
use roster_core::{StoreError, TenantId, User, UserKey};
use roster_store_common::{decode_profile, place_of, search_text};
use sqlx::{PgConnection, PgPool};

use crate::errors::Context;
use crate::users;

/// Candidate rows read per statement (see the SQLite store).
const MIN_BATCH: usize = 32;
/// Term rows a term tier reads per user its page lacks.
const TERM_ROWS_PER_USER: usize = 2;
/// Substring candidates read beyond what a page lacks.
const SUBSTRING_SLACK: usize = 4;
/// Candidates the index plan returns at least: it reads and sorts every candidate whatever
/// its `LIMIT`, so a larger page costs only their transfer, and a query whose holders the
/// first tiers listed (a full name held by 19 users, each of them dropped here) is not
/// re-read five at a time.
const INDEX_BATCH: i64 = 64;

/// Users whose `search_text` is computed per statement by the backfill at open.
const BACKFILL_CHUNK: i64 = 1000;

/// Search texts in a sample. Enough to see a trigram or a query held by one user in ten
/// thousand (rarer ones are treated as rare), small enough to read and count once a minute
/// at most. At a million users one sampled holder stands for 31 users; with 8 000 texts it
/// stood for 125, and a six-digit query's candidates were estimated at 2-6 times the 120-320
/// there are in one server's sample and about right in the next's (2026-12-07), which
/// chose between the whole table and 26 blocks (1 ms against 3 ms) by chance. Reading
/// 32 000 texts (about 40 000 before thinning, 5.4 MB) takes 250-280 ms at a million users,
/// off the request path except for a process's first search.
const SAMPLE_ROWS: i64 = 32_000;
/// How long a sample is used before the store asks whether the users changed since it was
/// read: often enough to follow an import.
const SAMPLE_TTL: Duration = Duration::from_mins(1);
/// Writes to `users` since a sample was read (rows inserted, updated or deleted, as
/// PostgreSQL's statistics count them), as a share of the rows it stands for, beyond which
/// it is read again. Reading one is not free: at a million users the block sample read
/// 1 000 pages in 58-68 ms and counting its trigrams took 14 ms of CPU, which on two cores
/// delayed the searches queued behind it. Read every minute whether or not anything had
/// changed, it gave four of the benchmark's queries a p99 of 36-44 ms in a run that
/// crossed one.
const SAMPLE_CHANGE: f64 = 0.05;
/// A sample is read again at least this often, whatever the statistics say (they count
/// nothing where `track_counts` is off).
const SAMPLE_MAX_AGE: Duration = Duration::from_hours(1);
/// The index plan's costs, in rows of a walk (0.6-0.7 µs each, re-checked with `strpos`),
/// measured at a million users on PostgreSQL 15 (2026-12-06): a candidate costs its fetch
/// out of key order, its `strpos` and its sort ([`CANDIDATE_COST`]) and a re-check per
/// `LIKE` pattern ([`LIKE_COST`], see [`like_patterns`]; 2.1 µs a candidate with one and
/// 3.9 µs with three when the table's pages were cached, 5 µs with one when they were
/// not), and the GIN index reads
/// every entry of the rarest posting list it is asked for ([`POSTING_COST`], 0.09-0.10 µs:
/// `728`'s 3 999 entries in 0.41 ms, `ang`'s 328 887 in 34.6 ms) and skips through the
/// others' ([`POSTING_SKIP_COST`]: `ang` and `728` together took 2.06 ms, 0.005 µs for each
/// entry of `ang`). Counting every list in full, as this model did until 2026-12-06,
/// priced `007281` (two lists of 4 000) at about twice its 0.75 ms, so the store asked 16
/// blocks (1.4 ms, a page not found) before the whole table.
const CANDIDATE_COST: f64 = 4.0;
const LIKE_COST: f64 = 1.6;
const POSTING_COST: f64 = 0.16;
const POSTING_SKIP_COST: f64 = 0.01;
/// A walk reads at least this many times the rows it is expected to need (and at least
/// [`MIN_WALK_ROWS`]), and as many as the index plan would cost, before the index takes
/// over from where it stopped: a walk whose estimate was short goes on while it still
/// costs less than the index would have, so it never costs more than twice the better plan
/// in hindsight (the index after a bounded detour, or the walk to the page). A walk bounded
/// by its estimate alone handed `nghui.` over to a posting list of 30 000 candidates
/// (40 ms) where a few thousand more rows found the page.
const WALK_SLACK: f64 = 2.0;
/// Sampled matches after the cursor that a walk's length is estimated from.
const LOCAL_MATCHES: usize = 3;
const MIN_WALK_ROWS: f64 = 1024.0;
/// The index is asked for at most this many of a query's trigrams.
const MAX_TRIGRAMS: usize = 3;
/// Keys per block of the trigram index (`id >> 14`, migration 0017): 61 blocks at a
/// million users. Measured there (2026-12-06, a page of 24 from the first user): blocks of
/// 16 384 keys found `ming.6`, `chen.4`, `chao.5` and `henyon` in 0.7-2.5 ms over one to
/// three statements; blocks of 65 536 in 1.4-2.5 ms, but a block's candidates cost in
/// proportion to its width where the page needed a part of it.
const KEY_BLOCK_SHIFT: u32 = 14;
/// How many times cheaper than the whole table's index statement the blocks up to a page
/// must be estimated to be before they are asked for. Measured at a million users
/// (2026-12-07): the whole table's statement for a six-digit query, 120-320 candidates,
/// took 0.9-1.8 ms, and each block with candidates 0.12-0.19 ms; with blocks chosen at
/// any estimated gain, `001744`, `001999`, `004229` and `awei.4` were estimated at 0.7-0.9
/// of the whole table, read 10-26 blocks (2-4 ms) for a page that lay further, and then
/// the whole table too. A factor of two keeps the blocks where they pay off many times
/// (`ming.6`, `nting.`, `chao.5`: a page in the first blocks, against 10-40 times that for
/// the whole table).
const SPAN_RISK: f64 = 2.0;
/// What one block costs beyond its candidates, in walk rows: a statement inside
/// `roster_substring_blocks` (no round trip) and GIN's descents into each posting list,
/// about 0.1 ms for an empty block at a million users.
const BLOCK_STATEMENT_COST: f64 = 150.0;

// The term tiers' page, in one statement of migration 0018's `roster_search_terms` (which
// runs with a generic plan; the migration says why): terms in `[$2, $3)` after `($4, $5)`
// in term and key order, at most `$6` rows, each with its user's search text, and, when
// `$7` is not NULL and the page fell short, the suffix tier's first rows in `[$7, $8)`, as
// many as it fell short by: one round trip (0.2-0.3 ms at a million users) where most
// queries took two. The first column says which tier a row is of. The function returns
// them in this order; the `ORDER BY` (over at most two pages) says so rather than relying
// on it.
const TERMS_PAGE: &str = "SELECT suffix, user_key, term, user_text \
    FROM roster_search_terms($1, $2, $3, $4, $5, $6, $7, $8) \
    ORDER BY suffix, term COLLATE \"C\", user_key";

// The walk: the tenant's active users in key order from the cursor, at most $4 of them,
// those holding the query kept. `strpos` is not an operator the trigram index serves, so
// the planner keeps to `users_active_key_idx` (migration 0016; the tenant is bounded as in
// `users::LIST_USERS`, which says why), and the outer LIMIT stops the walk at a page. The
// walk's last row comes back too, marked, held or not: when the walk ends short of a page,
// the index goes on from its key (a second statement finding that key with `OFFSET` read
// the walk's rows again: 12 ms after a walk of 30 000 rows).
const SUBSTRING_WALK: &str = "SELECT w.id, w.search_text, strpos(w.search_text, $2) > 0, w.n = $4 \
    FROM (SELECT u.tenant_id, u.id, u.search_text, \
      row_number() OVER (ORDER BY u.tenant_id, u.id) AS n FROM users u \
      WHERE (u.tenant_id, u.id) > ($1, $3) AND u.tenant_id <= $1 AND NOT u.is_resigned \
      ORDER BY u.tenant_id, u.id LIMIT $4) w \
    WHERE strpos(w.search_text, $2) > 0 OR w.n = $4 ORDER BY w.tenant_id, w.id LIMIT $5";

// The index plan over the whole table from the cursor, in one statement of migration
// 0018's `roster_substring_indexed`: the tenant's active users after key `$3` holding `$2`,
// at most `$4`, with one `LIKE` per trigram pattern `$5` to `$7` (NULL where fewer; see
// [`like_patterns`]), which is all the GIN index reads, and `strpos` re-checking the whole
// query. Every candidate re-checks each pattern (about 1 µs each at a million users, beside
// 2 µs for fetching it), so a trigram is never asked for twice. In the function's
// statements `u.id + 0` keeps the planner from walking the primary key in order instead
// (the walk is chosen in Rust, above), and `u.id + 0 > after_key` from ANDing the index
// with a bitmap of the primary key's range from the cursor (at a million users, with
// statistics from before an import ended, it read 325 000 keys, 11-13 ms, for a query with
// 19 holders); `u.tenant_id + 0` likewise keeps out a bitmap of the whole tenant from
// `users_active_key_idx`. They run with generic plans, planned once per connection (the
// migration says why). The block statements of migration 0017's `roster_substring_blocks`
// ([`SUBSTRING_BLOCKS`]) are these with one block of keys named too, which the index holds
// beside the trigrams: GIN then reads only that block's candidates. The function returns
// the rows in key order; the `ORDER BY` (over at most a page) says so rather than relying
// on it.
const SUBSTRING_INDEXED: &str = "SELECT user_key, ''::text, user_text \
    FROM roster_substring_indexed($1, $2, $3, $4, $5, $6, $7) ORDER BY user_key";
// Up to `$5` blocks from the cursor's, in one round trip (migration 0017 says why): each
// block's holders in key order, at most `$4` in all, the trigram patterns `$6` to `$8`
// (NULL where fewer).
// The function returns them in that order; the `ORDER BY` (over at most a page) says so
// rather than relying on it.
const SUBSTRING_BLOCKS: &str = "SELECT user_key, ''::text, user_text \
    FROM roster_substring_blocks($1, $2, $3, $4, $5, $6, $7, $8) ORDER BY user_key";

/// A random sample of the active users' search texts, with how many of them hold each
/// trigram that `pg_trgm` indexes, shared by all searches of the store and refreshed in the
/// background once it is older than [`SAMPLE_TTL`].
pub(crate) struct TextSample {
    current: RwLock<Option<Arc<Sample>>>,
    /// Set while a refresh runs, so that only one does.
    loading: AtomicBool,
    /// Which characters the database's `pg_trgm` keeps inside words.
    words: WordChars,
}

/// Which characters `pg_trgm` keeps inside words, which follows the database's character
/// type: in a UTF-8 one (`C.UTF-8`, `en_US.UTF-8`) every letter and digit, the Runic
/// letters of [`PUNCTUATION`] among them; in `C` or `POSIX`, ASCII letters and digits only.
/// The store asks for trigrams as the index holds them: one the index does not hold (a
/// trigram across a `.` where the `.`'s letter splits words) would be read as a rare
/// trigram and hand the index a pattern that matches most of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WordChars {
    Unicode,
    Ascii,
}

impl WordChars {
    /// Asks the database: with the Runic letters inside words, `a\u{16A0}b` is one word.
    pub(crate) async fn of(pool: &PgPool) -> Result<Self, StoreError> {
        let splits: bool = sqlx::query_scalar("SELECT show_trgm($1) = show_trgm('a b')")
            .bind(format!("a{}b", PUNCTUATION[0].1))
            .fetch_one(pool)
            .await
            .context("ask pg_trgm for its word characters")?;
        Ok(if splits { Self::Ascii } else { Self::Unicode })
    }
}

struct Sample {
    words: WordChars,
    /// The sampled users' keys, ascending, and their texts in the same order.
    keys: Vec<i64>,
    texts: Vec<String>,
    /// The sampled texts holding each trigram (three word characters, [`trigram_char`]):
    /// their places in `texts`, ascending. Planning a query reads only the texts that hold
    /// its rarest trigram, which alone can hold the query: scanning all 8 000 texts for it,
    /// twice (once to price the trigrams, once to estimate a walk), took 0.4-1.0 ms of the
    /// server's CPU per substring search at a million users (2026-12-07), a fifth of the
    /// search. A text holds about a hundred trigrams, so the lists hold a few MB.
    trigrams: HashMap<[char; 3], Vec<u32>>,
    /// Active users in the table, estimated.
    rows: f64,
    read_at: Instant,
    /// The statistics' count of writes to `users` just before the sample was read (`None`
    /// where they could not be read).
    writes: Option<i64>,
    /// When the sample was read or last found current.
    checked_at: Mutex<Instant>,
}

impl Sample {
    /// Whether the sample still stands for the table, `writes` being the statistics' count
    /// now: few writes since it was read, and not too old. A count lower than the
    /// sample's (statistics reset, or lost in a crash) or missing is no evidence.
    // Write counts below 2^52 are exact in an f64.
    #[allow(clippy::cast_precision_loss)]
    fn still_current(&self, writes: Option<i64>) -> bool {
        let (Some(then), Some(now)) = (self.writes, writes) else {
            return false;
        };
        now >= then
            && (now - then) as f64 <= SAMPLE_CHANGE * self.rows
            && self.read_at.elapsed() < SAMPLE_MAX_AGE
    }
}

/// Clears a "sample being read" flag when dropped.
struct Loading<'a>(&'a AtomicBool);

impl Drop for Loading<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The substring tier's plan for one query.
#[derive(Debug, Clone, PartialEq)]
enum Plan {
    /// Walk the tenant's users in key order, reading at most `rows` rows before the index takes over with
    /// `then`.
    Walk { rows: i64, then: IndexPlan },
    /// Ask the index.
    Indexed(IndexPlan),
    /// Nothing indexable and no estimate: walk to the end.
    WalkAll,
}

/// How the index is asked: for three trigrams (the rarest repeated when the query has fewer
/// rare ones), one block of keys at a time from the cursor's for at most `blocks`
/// statements ([`KEY_BLOCK_SHIFT`]), then for the rest of the table at once.
#[derive(Debug, Clone, PartialEq)]
struct IndexPlan {
    trigrams: [String; 3],
    blocks: u32,
}

/// A query's trigrams to ask the index for, and what asking costs in walk rows: `whole`
/// for the whole table at once, `per_row` for each row of the blocks asked for one at a
/// time (their candidates and re-checks; GIN skips through the posting lists to the block).
struct Priced {
    three: [String; 3],
    /// The query's rarest trigram in the sample: only the texts holding it can hold the
    /// query.
    rarest: [char; 3],
    whole: f64,
    per_row: f64,
}

/// Punctuation that migration 0015's `roster_trigram_text` replaces by letters before
/// `pg_trgm` sees a search text, so that its trigrams span the `.` of `jie.93` or the `@` of
/// an e-mail. The two lists must name the same pairs (a test compares them on a real
/// database); a pair missing here only makes a query's trigrams less selective.
const PUNCTUATION: [(char, char); 7] = [
    ('.', '\u{16A0}'),
    ('@', '\u{16A1}'),
    ('_', '\u{16A2}'),
    ('-', '\u{16A3}'),
    ('+', '\u{16A4}'),
    ('\'', '\u{16A5}'),
    ('\u{B7}', '\u{16A6}'),
];

/// A character as `pg_trgm` sees it in `roster_trigram_text(search_text)`: mapped
/// punctuation as its letter, an alphanumeric character as itself, anything else (which
/// splits words) as `None`.
fn trigram_char(c: char, words: WordChars) -> Option<char> {
    match (words, PUNCTUATION.iter().find(|(p, _)| *p == c)) {
        (WordChars::Unicode, Some(&(_, letter))) => Some(letter),
        (WordChars::Unicode, None) => c.is_alphanumeric().then_some(c),
        (WordChars::Ascii, _) => c.is_ascii_alphanumeric().then_some(c),
    }
}

/// The query's windows of three word characters ([`trigram_char`]): the trigrams `pg_trgm`
/// extracts from `roster_trigram_text(..) LIKE '%q%'`, each once, as the index spells them.
fn trigrams(q: &str, words: WordChars) -> Vec<[char; 3]> {
    let chars: Vec<Option<char>> = q.chars().map(|c| trigram_char(c, words)).collect();
    let mut out: Vec<[char; 3]> = Vec::new();
    for w in chars.windows(3) {
        if let [Some(a), Some(b), Some(c)] = *w {
            let t = [a, b, c];
            if !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

impl Sample {
    /// A sample of `(key, search text)` pairs, in any order, from a table of about `rows`
    /// active users.
    fn of(mut sampled: Vec<(i64, String)>, rows: f64, words: WordChars) -> Self {
        sampled.sort_unstable_by_key(|s| s.0);
        let (keys, texts): (Vec<i64>, Vec<String>) = sampled.into_iter().unzip();
        let mut holders: HashMap<[char; 3], Vec<u32>> = HashMap::new();
        for (i, text) in texts.iter().enumerate() {
            // A sample holds at most SAMPLE_ROWS texts.
            let i = u32::try_from(i).unwrap_or(u32::MAX);
            for t in trigrams(text, words) {
                holders.entry(t).or_default().push(i);
            }
        }
        Self {
            words,
            keys,
            texts,
            trigrams: holders,
            rows: rows.max(1.0),
            read_at: Instant::now(),
            writes: None,
            checked_at: Mutex::new(Instant::now()),
        }
    }

    /// The places in `texts` of the sampled texts holding the trigram `t`, ascending.
    fn holding(&self, t: [char; 3]) -> &[u32] {
        self.trigrams.get(&t).map_or(&[], Vec::as_slice)
    }

    /// The trigrams of `q` to ask the index for (the first repeated when fewer than three)
    /// and what the index plan costs with them, in rows of a walk; `None` when `q` has no
    /// trigram. The rarest trigram first, then, one at a time, the trigram that lowers the
    /// estimated cost most, while one does: a trigram removes the candidates that lack it
    /// (counted in the sampled texts that hold every trigram taken) but costs its posting
    /// list and a re-check per candidate. `afa` beside `maf` removes none; `an.` beside `n.7`
    /// and `jia` in `jian.7` removes few and costs a posting list of a fifth of all users.
    // Counts of a few thousand rows are exact in an f64.
    #[allow(clippy::cast_precision_loss)]
    fn trigrams_to_ask(&self, q: &str) -> Option<Priced> {
        let n = self.texts.len().max(1) as f64;
        let mut tris: Vec<([char; 3], u32)> = trigrams(q, self.words)
            .into_iter()
            .map(|t| {
                let held = self.holding(t).len();
                (t, u32::try_from(held).unwrap_or(u32::MAX))
            })
            .collect();
        // Stable: among equally rare trigrams the query's order decides.
        tris.sort_by_key(|&(_, c)| c);
        tris.truncate(16);
        let (rarest, _) = *tris.first()?;
        // For each sampled text that holds the rarest trigram, which of the others it holds.
        let raw: Vec<String> = tris.iter().map(|&(t, _)| unmapped(t)).collect();
        let first = raw[0].as_str();
        let holders: Vec<u16> = self
            .holding(rarest)
            .iter()
            .map(|&i| self.texts[i as usize].as_str())
            .filter(|text| text.contains(first))
            .map(|text| {
                raw.iter()
                    .enumerate()
                    .filter(|(_, r)| text.contains(r.as_str()))
                    .fold(0_u16, |mask, (i, _)| mask | (1 << i))
            })
            .collect();
        let rows = |count: f64| count.max(0.5) / n * self.rows;
        let spelled: Vec<String> = tris.iter().map(|(t, _)| t.iter().collect()).collect();
        let candidates = |taken: u16| {
            let joint = holders.iter().filter(|&&m| m & taken == taken).count() as f64;
            // A re-check per pattern the trigrams are asked for with, not per trigram.
            let asked: Vec<&String> = (0..spelled.len())
                .filter(|i| taken & (1 << i) != 0)
                .map(|i| &spelled[i])
                .collect();
            let likes = like_patterns(q, &asked).len() as f64;
            rows(joint) * (CANDIDATE_COST + LIKE_COST * likes)
        };
        // GIN reads the rarest list asked for in full and skips through the others.
        let cost = |taken: u16| {
            let lists: Vec<f64> = tris
                .iter()
                .enumerate()
                .filter(|(i, _)| taken & (1 << i) != 0)
                .map(|(_, &(_, c))| rows(f64::from(c)))
                .collect();
            let rarest = lists.iter().copied().fold(f64::INFINITY, f64::min);
            let skipped: f64 = lists.iter().sum::<f64>() - rarest;
            rarest * POSTING_COST + skipped * POSTING_SKIP_COST + candidates(taken)
        };
        let mut taken: u16 = 1;
        let mut best = cost(taken);
        while (taken.count_ones() as usize) < MAX_TRIGRAMS {
            let next = (1..tris.len())
                .filter(|i| taken & (1 << i) == 0)
                .map(|i| (i, cost(taken | (1 << i))))
                .min_by(|a, b| a.1.total_cmp(&b.1));
            match next {
                Some((i, c)) if c < best => {
                    taken |= 1 << i;
                    best = c;
                }
                _ => break,
            }
        }
        let mut picked: Vec<String> = (0..tris.len())
            .filter(|i| taken & (1 << i) != 0)
            .map(|i| tris[i].0.iter().collect())
            .collect();
        let first: String = rarest.iter().collect();
        picked.resize(MAX_TRIGRAMS, first);
        let three = [picked[0].clone(), picked[1].clone(), picked[2].clone()];
        Some(Priced {
            three,
            rarest,
            whole: best,
            per_row: candidates(taken) / self.rows,
        })
    }

    /// Chooses the plan for a page of `need` candidates of the substring `q` after the key
    /// `after`.
    // Counts of a few thousand rows and pages of a few dozen are exact in an f64.
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    fn plan(&self, q: &str, need: usize, after: i64) -> Plan {
        if self.texts.is_empty() {
            // Read while the table was empty (a server started before its first import):
            // nothing to price with until the next sample.
            return fallback_plan(q, self.words);
        }
        let Some(priced) = self.trigrams_to_ask(q) else {
            // No trigram to ask the index for: a walk is the only plan.
            return Plan::WalkAll;
        };
        let index_cost = priced.whole;
        // How far a walk from the cursor goes for a page: `need` over the share of matches
        // among the sampled users after the cursor's key (all of them when the cursor is
        // past the last), counted up to the third match (or as many as the page stands
        // for, in a small table), so that a share near the cursor counts. Holders bunch in
        // key order (the e-mails `…ing.82…` of users 82 000-82 999, say): a walk from the
        // first user read 57 000 rows for `ing.82` where its share in the whole sample
        // promised a page in 25 000. An estimate that is too short costs a bounded walk
        // before the index; one that is too long costs the index where a walk was cheap.
        let n = self.texts.len();
        let rate = (n as f64 / self.rows).min(1.0);
        let mut start = self.keys.partition_point(|&k| k <= after);
        if start == n {
            start = 0;
        }
        let left = n - start;
        let counted = ((need as f64 * rate).ceil() as usize).max(LOCAL_MATCHES);
        let mut found = 0;
        let mut reach = left;
        // Only the texts holding the query's rarest trigram can hold the query.
        let rarest = self.holding(priced.rarest);
        let from = rarest.partition_point(|&i| (i as usize) < start);
        for &i in &rarest[from..] {
            if self.texts[i as usize].contains(q) {
                found += 1;
                if found == counted {
                    reach = i as usize - start + 1;
                    break;
                }
            }
        }
        let walk_rows =
            (need as f64 * reach as f64 / (found as f64).max(0.5)).min(left as f64 / rate);
        // The same stretch asked of the index a block of keys at a time: the blocks it
        // spans (keys per row from the sample's last key, so that keys other tenants hold
        // or that were deleted count), each a statement and its candidates. A query the
        // sample does not hold is searched to the end. Blocks whose candidates cost more
        // than walking their rows (a trigram most users hold) are never asked for.
        let last_key = self.keys.last().copied().unwrap_or(0).max(0);
        let keys_per_row = (last_key as f64 / self.rows).max(1.0);
        let first_block = after.max(0) >> KEY_BLOCK_SHIFT;
        let blocks_left = ((last_key >> KEY_BLOCK_SHIFT) - first_block + 1).max(1) as f64;
        let blocks = if found == 0 {
            blocks_left
        } else {
            let page_key = after.max(0) as f64 + walk_rows * keys_per_row;
            ((page_key as i64 >> KEY_BLOCK_SHIFT) - first_block + 1).max(1) as f64
        };
        let block_rows = f64::from(1_u32 << KEY_BLOCK_SHIFT) / keys_per_row;
        let block_cost = BLOCK_STATEMENT_COST + priced.per_row * block_rows;
        let span_cost = if block_cost < block_rows {
            blocks.min(blocks_left) * block_cost
        } else {
            f64::INFINITY
        };
        tracing::debug!(
            q,
            found,
            walk_rows,
            blocks,
            block_cost,
            span_cost,
            index_cost,
            "substring search estimates"
        );
        // The cheaper way to ask the index. Block by block, it gives up after it has spent
        // what the whole table would have cost and asks for the rest at once, so that a
        // short estimate costs at most about twice the whole table's statement. The blocks
        // must promise to cost less than half of that statement: its cost is the same
        // wherever the page ends, theirs is a guess of where that is, from a few sampled
        // holders.
        let (then, alt_cost) = if SPAN_RISK * span_cost < index_cost {
            let budget = (index_cost / block_cost).min(blocks_left);
            let plan = IndexPlan {
                trigrams: priced.three,
                blocks: budget.ceil() as u32,
            };
            (plan, span_cost)
        } else {
            let plan = IndexPlan {
                trigrams: priced.three,
                blocks: 0,
            };
            (plan, index_cost)
        };
        if found > 0 && walk_rows <= alt_cost {
            // A walk that reads its rows without a page hands over to the index, unless the
            // index costs more than walking the whole table (a trigram every mobile holds):
            // then the walk goes on to the end.
            if alt_cost > self.rows {
                return Plan::WalkAll;
            }
            let rows = (walk_rows * WALK_SLACK).max(alt_cost).max(MIN_WALK_ROWS);
            return Plan::Walk {
                rows: rows as i64,
                then,
            };
        }
        if alt_cost <= walk_rows {
            Plan::Indexed(then)
        } else {
            // Not seen in the sample, and made of trigrams most users hold (`000000`): a
            // walk reads at most the table, the index would hand over most of it, unsorted.
            Plan::WalkAll
        }
    }
}

/// A trigram as the query spells it ([`trigram_char`] undone).
fn unmapped(t: [char; 3]) -> String {
    t.iter()
        .map(|&c| {
            PUNCTUATION
                .iter()
                .find(|(_, letter)| *letter == c)
                .map_or(c, |&(p, _)| p)
        })
        .collect()
}

impl TextSample {
    pub(crate) fn new(words: WordChars) -> Self {
        Self {
            current: RwLock::new(None),
            loading: AtomicBool::new(false),
            words,
        }
    }

    /// The current sample, reading the first one now (a search waits for it once per
    /// process) and starting a background refresh of a stale one. `None` while the first
    /// one is being read by another search, or when it could not be read.
    async fn get(self: &Arc<Self>, pool: &PgPool) -> Option<Arc<Sample>> {
        let current = self.current.read().ok().and_then(|c| c.clone());
        match current {
            Some(sample) => {
                let due = sample
                    .checked_at
                    .lock()
                    .map_or(true, |at| at.elapsed() >= SAMPLE_TTL);
                if due && !self.loading.swap(true, Ordering::AcqRel) {
                    let this = Arc::clone(self);
                    let pool = pool.clone();
                    let current = Arc::clone(&sample);
                    tokio::spawn(async move {
                        let _loading = Loading(&this.loading);
                        if current.still_current(read_writes(&pool).await) {
                            if let Ok(mut at) = current.checked_at.lock() {
                                *at = Instant::now();
                            }
                        } else {
                            this.refresh(&pool).await;
                        }
                    });
                }
                Some(sample)
            }
            // Searches that start while the first sample is read use the fallback plan
            // rather than each reading a sample of their own.
            None if self.loading.swap(true, Ordering::AcqRel) => None,
            None => {
                // Cleared however this ends: the search (and this read with it) is dropped
                // when its client hangs up.
                let _loading = Loading(&self.loading);
                self.refresh(pool).await;
                self.current.read().ok().and_then(|c| c.clone())
            }
        }
    }

    /// After a bulk write: the entries the trigram index still holds in its pending list
    /// are merged into its trees, and the sample is read again now.
    ///
    /// Every search through the index reads the whole pending list (up to 1 MB, migration
    /// 0014), and `roster_substring_blocks` reads it once per block: after a million-user
    /// import, with 49 pages pending, 62 empty blocks took 9.6 ms against 2.9 ms once
    /// merged. Autovacuum merges it too, but only when it runs on the table (and not at all
    /// where it is off); the server's own inserts merge it only when it is full.
    pub(crate) async fn bulk_write_ended(&self, pool: &PgPool) {
        let merged = sqlx::query_scalar::<_, i64>(
            "SELECT gin_clean_pending_list('users_search_block_trgm_idx'::regclass)",
        )
        .fetch_one(pool)
        .await;
        if let Err(err) = merged {
            tracing::warn!("failed to merge the trigram index's pending list: {err}");
        }
        self.refresh(pool).await;
    }

    async fn refresh(&self, pool: &PgPool) {
        match read_sample(pool, self.words).await {
            Ok(sample) => {
                if let Ok(mut current) = self.current.write() {
                    *current = Some(Arc::new(sample));
                }
            }
            // Searches still work without a sample (the index plan for every query); the
            // next search after the TTL tries again.
            Err(err) => tracing::warn!("failed to sample the users' search texts: {err}"),
        }
    }
}

/// The statistics' count of rows inserted, updated and deleted in `users` (every node's
/// writes, counted by the server; a backend reports its own within seconds), or `None`.
async fn read_writes(pool: &PgPool) -> Option<i64> {
    let writes = sqlx::query_scalar::<_, Option<i64>>(
        "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables \
         WHERE relid = 'users'::regclass",
    )
    .fetch_optional(pool)
    .await;
    match writes {
        Ok(count) => count.flatten(),
        Err(err) => {
            tracing::warn!("failed to read the users' write statistics: {err}");
            None
        }
    }
}

/// Reads a block sample of about [`SAMPLE_ROWS`] active users' search texts, spread over
/// the whole table.
async fn read_sample(pool: &PgPool, words: WordChars) -> Result<Sample, StoreError> {
    // Counted first: a write that lands while the sample is read counts as after it.
    let writes = read_writes(pool).await;
    // `reltuples` is -1 before the first ANALYZE; the sample then reads the first rows.
    let rows: f64 =
        sqlx::query_scalar("SELECT reltuples::float8 FROM pg_class WHERE oid = 'users'::regclass")
            .fetch_one(pool)
            .await
            .context("count users for the search sample")?;
    // A quarter more blocks than needed, all of them read, then thinned evenly: a `LIMIT`
    // on a larger sample would keep the rows of its first blocks only, the users with the
    // lowest keys (an early sample that took the first half of a million users saw `n.7`
    // in 0.5% of them where 2.5% of all users hold it, and chose the index for `jian.7`:
    // 25 000 candidates, 130 ms). The limit only bounds a sample whose `reltuples` was far
    // too low.
    #[allow(clippy::cast_precision_loss)]
    let percent = if rows > 0.0 {
        (125.0 * SAMPLE_ROWS as f64 / rows).min(100.0)
    } else {
        100.0
    };
    let mut sampled: Vec<(i64, String)> = sqlx::query_as(
        "SELECT id, search_text FROM users TABLESAMPLE SYSTEM ($1) \
         WHERE NOT is_resigned AND search_text <> '' LIMIT $2",
    )
    .bind(percent)
    .bind(4 * SAMPLE_ROWS)
    .fetch_all(pool)
    .await
    .context("sample the users' search texts")?;
    thin(
        &mut sampled,
        usize::try_from(SAMPLE_ROWS).unwrap_or(usize::MAX),
    );
    #[allow(clippy::cast_precision_loss)]
    let rows = rows.max(sampled.len() as f64);
    // Counting the trigrams of 8 000 texts took about 14 ms of CPU (release build), so of
    // 32 000 about four times that, which on an async worker would stall the requests
    // queued behind it.
    let mut sample = tokio::task::spawn_blocking(move || Sample::of(sampled, rows, words))
        .await
        .map_err(|e| StoreError::Backend(format!("failed to count the search sample: {e}")))?;
    sample.writes = writes;
    Ok(sample)
}

/// Keeps `keep` of `items`, evenly spaced, in their order.
fn thin<T>(items: &mut Vec<T>, keep: usize) {
    let len = items.len();
    if len <= keep {
        return;
    }
    let mut next = 0;
    let mut i = 0;
    items.retain(|_| {
        // Item `i` is kept when it is the first at or after the next evenly spaced place.
        let kept = i * keep >= next * len;
        if kept {
            next += 1;
        }
        i += 1;
        kept && next <= keep
    });
}

fn like_trigram(t: &str) -> String {
    // Letters and digits only (punctuation is mapped to letters), so nothing needs escaping.
    format!("%{t}%")
}

/// The `LIKE` patterns that ask the index for `trigrams` of `q`. A run of trigrams that
/// follow each other in the query is spelled as the run's characters (`'%04160%'` for
/// `041`, `416` and `160` of `004160`), and runs that do not share a character are joined
/// by `%` in the query's order (`'%awe%iᚠ4%'` for `awe` and `iᚠ4` of `awei.4`). `pg_trgm`
/// reads exactly the runs' trigrams from such a pattern (the same candidates), while every
/// candidate is re-checked once per pattern through `roster_trigram_text`, seven `replace`
/// calls: one pattern instead of three took `004160` from 0.97-1.06 to 0.82-0.87 ms at a
/// million users, and one instead of two took `huangchenyong` (143 candidates) from
/// 1.35-1.38 to 1.16-1.17 ms. Runs that share a character cannot be joined (`'%abc%cde%'`
/// does not match `abcde`) and stay apart. Each pattern matches every text holding the
/// query as the index spells it: its runs are substrings of the query, in its order,
/// without overlap.
fn like_patterns(q: &str, trigrams: &[&String]) -> Vec<String> {
    let spelled: Vec<char> = q
        .chars()
        .map(|c| {
            PUNCTUATION
                .iter()
                .find(|(p, _)| *p == c)
                .map_or(c, |&(_, letter)| letter)
        })
        .collect();
    let mut starts: Vec<usize> = Vec::with_capacity(trigrams.len());
    let mut alone: Vec<String> = Vec::new();
    for t in trigrams {
        let chars: Vec<char> = t.chars().collect();
        match spelled.windows(3).position(|w| w == chars.as_slice()) {
            Some(i) => starts.push(i),
            // Not in the query as spelled (the plan takes its trigrams from it, so never):
            // asked for on its own.
            None => alone.push(like_trigram(t)),
        }
    }
    starts.sort_unstable();
    starts.dedup();
    // Runs of windows that follow each other, as `(first, last)` window starts.
    let mut runs: Vec<(usize, usize)> = Vec::with_capacity(starts.len());
    for i in starts {
        match runs.last_mut() {
            Some((_, last)) if i == *last + 1 => *last = i,
            _ => runs.push((i, i)),
        }
    }
    // Each pattern as the character range of each of its runs; a run joins the first
    // pattern whose last character comes before it.
    let mut joined: Vec<Vec<(usize, usize)>> = Vec::with_capacity(runs.len());
    for (first, last) in runs {
        let chars = (first, last + 3);
        match joined
            .iter_mut()
            .find(|p| p.last().is_some_and(|&(_, end)| first >= end))
        {
            Some(pattern) => pattern.push(chars),
            None => joined.push(vec![chars]),
        }
    }
    let mut patterns: Vec<String> = joined
        .into_iter()
        .map(|ranges| {
            let mut p = String::from("%");
            for (from, to) in ranges {
                p.extend(&spelled[from..to]);
                p.push('%');
            }
            p
        })
        .collect();
    patterns.extend(alone);
    patterns
}

/// The plan without a sample to price it: the index over the query's first three trigrams,
/// or a walk when it has none.
fn fallback_plan(q: &str, words: WordChars) -> Plan {
    let tris = trigrams(q, words);
    match tris.first() {
        None => Plan::WalkAll,
        Some(first) => {
            let at = |k: usize| tris.get(k).unwrap_or(first).iter().collect::<String>();
            Plan::Indexed(IndexPlan {
                trigrams: [at(0), at(1), at(2)],
                blocks: 0,
            })
        }
    }
}

/// What a search plans its substring tier with: the sample current when it started, if
/// any, and the database's word characters (for the plan without a sample).
struct Planner {
    current: Option<Arc<Sample>>,
    words: WordChars,
}

/// Candidates of a tier in its order, and whether the tier has no more after them.
type Page = (Vec<(i64, String, String)>, bool);

/// Substring candidates from key `after` on, in key order: at least `need` of them (the
/// index plan returns up to [`INDEX_BATCH`] at once), or all that are left.
async fn substring_candidates(
    conn: &mut PgConnection,
    sample: &Planner,
    tenant: TenantId,
    q: &str,
    after: i64,
    need: usize,
) -> Result<Page, StoreError> {
    // Without a sample (being read by another search, or unreadable), the index over the
    // first three trigrams.
    let plan = match &sample.current {
        Some(s) => s.plan(q, need, after),
        None => fallback_plan(q, sample.words),
    };
    tracing::debug!(q, after, need, ?plan, "substring search plan");
    run_plan(conn, tenant, q, after, need, plan).await
}

/// Runs one plan of the substring tier.
async fn run_plan(
    conn: &mut PgConnection,
    tenant: TenantId,
    q: &str,
    after: i64,
    need: usize,
    plan: Plan,
) -> Result<Page, StoreError> {
    let need_i = i64::try_from(need).unwrap_or(i64::MAX);
    let (walk_rows, then) = match plan {
        Plan::Indexed(index) => return indexed(conn, tenant, q, &index, after, need).await,
        Plan::WalkAll => (i64::MAX, None),
        Plan::Walk { rows, then } => (rows, Some(then)),
    };
    let walked: Vec<(i64, String, bool, bool)> = sqlx::query_as(SUBSTRING_WALK)
        .bind(tenant.0)
        .bind(q)
        .bind(after)
        .bind(walk_rows)
        .bind(need_i)
        .fetch_all(&mut *conn)
        .await
        .context("substring search (walk)")?;
    // The last row the walk read, present only when it read all it was allowed to (and
    // found less than a page before it).
    let end = walked.iter().find(|r| r.3).map(|r| r.0);
    let mut rows: Vec<(i64, String, String)> = walked
        .into_iter()
        .filter(|r| r.2)
        .map(|(key, text, ..)| (key, String::new(), text))
        .collect();
    if rows.len() >= need {
        return Ok((rows, false));
    }
    // Short of a page: the walk reached the tenant's last user, or read all it was allowed
    // to, and then the index goes on from its end.
    let (Some(then), Some(end)) = (then, end) else {
        return Ok((rows, true));
    };
    let (more, exhausted) = indexed(conn, tenant, q, &then, end, need - rows.len()).await?;
    rows.extend(more);
    Ok((rows, exhausted))
}

/// The index plan from key `after` on: block by block (each block's holders in key order,
/// so a page ends in the first block that fills it), then the rest of the table at once.
async fn indexed(
    conn: &mut PgConnection,
    tenant: TenantId,
    q: &str,
    plan: &IndexPlan,
    mut after: i64,
    need: usize,
) -> Result<Page, StoreError> {
    let mut distinct: Vec<&String> = Vec::with_capacity(3);
    for t in &plan.trigrams {
        if !distinct.contains(&t) {
            distinct.push(t);
        }
    }
    let patterns = like_patterns(q, &distinct);
    // The statements take one to three patterns (at most one per trigram asked for).
    if patterns.is_empty() || patterns.len() > MAX_TRIGRAMS {
        return Err(StoreError::Backend(format!(
            "a substring plan of {} trigram patterns",
            patterns.len()
        )));
    }
    let pattern = |k: usize| patterns.get(k).cloned();
    let mut rows: Vec<(i64, String, String)> = Vec::new();
    if plan.blocks > 0 {
        // What the page lacks, exactly: unlike the whole table's statement, every holder
        // beyond it can cost more blocks (asking for 64 took `ming.6` from its first block
        // to its fourth), and fewer rows mean the blocks hold no more.
        let limit = i32::try_from(need).unwrap_or(i32::MAX);
        let blocks = i32::try_from(plan.blocks).unwrap_or(i32::MAX);
        rows = sqlx::query_as(SUBSTRING_BLOCKS)
            .bind(tenant.0)
            .bind(q)
            .bind(after)
            .bind(limit)
            .bind(blocks)
            .bind(pattern(0))
            .bind(pattern(1))
            .bind(pattern(2))
            .fetch_all(&mut *conn)
            .await
            .context("substring search (index blocks)")?;
        if rows.len() >= need {
            return Ok((rows, false));
        }
        // Every holder of those blocks is listed: the rest starts after the last one's
        // keys (none follows the last block a key can be in).
        let first = after.max(0) >> KEY_BLOCK_SHIFT;
        let Some(next) = first
            .checked_add(i64::from(blocks))
            .and_then(|b| b.checked_mul(1 << KEY_BLOCK_SHIFT))
        else {
            return Ok((rows, true));
        };
        after = next - 1;
    }
    let limit = i64::try_from(need - rows.len())
        .unwrap_or(i64::MAX)
        .max(INDEX_BATCH);
    let rest: Vec<(i64, String, String)> = sqlx::query_as(SUBSTRING_INDEXED)
        .bind(tenant.0)
        .bind(q)
        .bind(after)
        .bind(limit)
        .bind(pattern(0))
        .bind(pattern(1))
        .bind(pattern(2))
        .fetch_all(&mut *conn)
        .await
        .context("substring search (index)")?;
    // Fewer than asked for: the table holds no more. A page whose holders the first tiers
    // listed (a full name's 19 users, each dropped here) then ends without asking again
    // from the last of them (two more statements, 4-7 ms at a million users).
    let exhausted = rest.len() < usize::try_from(limit).unwrap_or(usize::MAX);
    rows.extend(rest);
    Ok((rows, exhausted))
}

/// A term tier's rows in `[low, high)` from `after` on (at most `n`), each marked `false`,
/// and after them, when a suffix range is given and they fall short of `n`, the suffix
/// tier's first rows, marked `true` ([`TERMS_PAGE`]).
async fn terms_page(
    conn: &mut PgConnection,
    tenant: TenantId,
    (low, high): (String, String),
    after: Option<&SearchCursor>,
    n: usize,
    suffix: Option<(String, String)>,
) -> Result<Vec<(bool, i64, String, String)>, StoreError> {
    let (term, key) = after.map_or((low.clone(), -1), |c| (c.term.clone(), c.key.0));
    let (suffix_low, suffix_high) = suffix.unzip();
    sqlx::query_as(TERMS_PAGE)
        .bind(tenant.0)
        .bind(low)
        .bind(high)
        .bind(term)
        .bind(key)
        .bind(i64::try_from(n).unwrap_or(i64::MAX))
        .bind(suffix_low)
        .bind(suffix_high)
        .fetch_all(conn)
        .await
        .context("search terms")
}

/// Rows of [`terms_page`] without their tier mark.
fn strip(rows: Vec<(bool, i64, String, String)>) -> Vec<(i64, String, String)> {
    rows.into_iter().map(|(_, k, t, x)| (k, t, x)).collect()
}

/// The whole tier's candidates from `after` on (at most `n`) and, when they fall short of
/// `n`, the suffix tier's first candidates, as many as they fell short by ([`TERMS_PAGE`]).
/// The suffix page is `None` when none was read.
async fn whole_and_suffix(
    conn: &mut PgConnection,
    tenant: TenantId,
    q: &SearchQuery,
    after: Option<&SearchCursor>,
    n: usize,
) -> Result<(Page, Option<Page>), StoreError> {
    let (Some((low, high)), Some((suffix_low, suffix_high))) = (
        q.term_range(SearchTier::Whole),
        q.term_range(SearchTier::Suffix),
    ) else {
        return Err(StoreError::Backend(
            "the whole and suffix tiers have term ranges".into(),
        ));
    };
    let rows = terms_page(
        conn,
        tenant,
        (low, high),
        after,
        n,
        Some((suffix_low, suffix_high)),
    )
    .await?;
    let (suffix, whole): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r.0);
    // The statement's own arithmetic: the suffix rows were limited to what the whole
    // tier's page lacked, and fewer than that means the suffix tier has no more.
    let suffix_limit = n - whole.len().min(n);
    let whole_exhausted = whole.len() < n;
    let suffix = (suffix_limit > 0).then(|| {
        let exhausted = suffix.len() < suffix_limit;
        (strip(suffix), exhausted)
    });
    Ok(((strip(whole), whole_exhausted), suffix))
}

async fn candidates(
    conn: &mut PgConnection,
    sample: &Planner,
    tenant: TenantId,
    q: &SearchQuery,
    tier: SearchTier,
    after: Option<&SearchCursor>,
    n: usize,
) -> Result<Page, StoreError> {
    if let Some(range) = q.term_range(tier) {
        let rows = strip(terms_page(conn, tenant, range, after, n, None).await?);
        let exhausted = rows.len() < n;
        Ok((rows, exhausted))
    } else {
        substring_candidates(
            conn,
            sample,
            tenant,
            q.as_str(),
            after.map_or(-1, |c| c.key.0),
            n,
        )
        .await
    }
}

/// A page of matches with their places (see `Store::search_users`).
pub(crate) async fn search_users(
    pool: &PgPool,
    sample: &Arc<TextSample>,
    tenant: TenantId,
    q: &SearchQuery,
    after: Option<SearchCursor>,
    limit: usize,
) -> Result<Vec<(User, SearchCursor)>, StoreError> {
    // The sample is taken before the connection: the first one is read on a connection of
    // its own, and a search holding one while it waits for another could wait on itself
    // in a small pool.
    let planner = Planner {
        current: if q.matches_substrings() {
            sample.get(pool).await
        } else {
            None
        },
        words: sample.words,
    };
    // Every statement of the search on one connection: taking one from the pool for each
    // statement cost a hand-back (and sqlx's ping on it, a round trip) per statement.
    let mut conn = pool
        .acquire()
        .await
        .context("take a connection for a search")?;
    let mut found: Vec<SearchCursor> = Vec::with_capacity(limit);
    let mut cursor = after;
    // The suffix tier's first page, read with the whole tier's.
    let mut suffix_first: Option<Page> = None;
    'tiers: for tier in SearchTier::ALL {
        if found.len() == limit {
            break;
        }
        if cursor.as_ref().is_some_and(|c| c.tier > tier)
            || (tier == SearchTier::Substring && !q.matches_substrings())
        {
            continue;
        }
        // A substring page reads what it lacks and a few more (for users `place_of` drops
        // as already listed by prefix): its walk costs in proportion, unlike a term range.
        // A term range holds most users twice (a full pinyin is also the start of the
        // e-mail `suntingbo.4@…`, and the worse term is dropped), so it reads twice what
        // the page lacks: `suntingbo`'s 20 holders came in two statements of 32 rows.
        let batch = if tier == SearchTier::Substring {
            limit - found.len() + SUBSTRING_SLACK
        } else {
            (TERM_ROWS_PER_USER * (limit - found.len())).max(MIN_BATCH)
        };
        loop {
            let within = cursor.as_ref().filter(|c| c.tier == tier);
            let (rows, exhausted) = match tier {
                SearchTier::Whole if suffix_first.is_none() => {
                    let (whole, suffix) =
                        whole_and_suffix(&mut conn, tenant, q, within, batch).await?;
                    suffix_first = suffix;
                    whole
                }
                // Read before any row of the tier was seen, so only as its first page.
                SearchTier::Suffix if within.is_none() && suffix_first.is_some() => {
                    suffix_first.take().unwrap_or_default()
                }
                _ => candidates(&mut conn, &planner, tenant, q, tier, within, batch).await?,
            };
            for (key, term, text) in rows {
                let place = SearchCursor {
                    tier,
                    term,
                    key: UserKey(key),
                };
                let kept =
                    place_of(&text, q).is_some_and(|(t, term)| t == tier && term == place.term);
                cursor = Some(place.clone());
                if kept {
                    found.push(place);
                    if found.len() == limit {
                        break 'tiers;
                    }
                }
            }
            if exhausted {
                break;
            }
        }
    }
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<i64> = found.iter().map(|p| p.key.0).collect();
    let mut by_key: HashMap<i64, User> = users::get_users_by_keys(&mut conn, tenant, &keys)
        .await?
        .into_iter()
        .map(|u| (u.key.0, u))
        .collect();
    // A user resigned between the two reads is left out rather than shown.
    Ok(found
        .into_iter()
        .filter_map(|p| {
            by_key
                .remove(&p.key.0)
                .filter(|u| !u.status.is_resigned)
                .map(|u| (u, p))
        })
        .collect())
}

/// Computes `search_text` for users that lack it (every user once, right after migration
/// 0006; pinyin needs Rust), a chunk per statement; the triggers index each row as it is
/// written. Safe to run from several nodes at once: a row is only written while still empty.
pub(crate) async fn backfill(pool: &PgPool) -> Result<(), StoreError> {
    let mut last = -1_i64;
    loop {
        let rows: Vec<(i64, String)> = sqlx::query_as(
            "SELECT id, doc FROM users WHERE search_text = '' AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(last)
        .bind(BACKFILL_CHUNK)
        .fetch_all(pool)
        .await
        .context("read users to index")?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut texts = Vec::with_capacity(rows.len());
        for (id, doc) in &rows {
            last = *id;
            // A document that does not decode is indexed with no terms (`[]`), so that the
            // backfill ends; reading that user fails loudly anyway.
            let text = decode_profile(doc).map_or_else(|_| "[]".to_owned(), |p| search_text(&p));
            ids.push(*id);
            texts.push(text);
        }
        sqlx::query(
            "UPDATE users u SET search_text = v.t FROM UNNEST($1::bigint[], $2::text[]) AS v(id, t) \
             WHERE u.id = v.id AND u.search_text = ''",
        )
        .bind(&ids)
        .bind(&texts)
        .execute(pool)
        .await
        .context("index users")?;
    }
}

#[cfg(test)]
mod tests {
    use roster_core::TenantId;

    use super::{
        like_patterns, like_trigram, read_writes, run_plan, thin, trigrams, IndexPlan, Plan,
        Sample, WordChars, KEY_BLOCK_SHIFT, PUNCTUATION, SUBSTRING_WALK,
    };

    /// A fresh store on the test server, and its pool; `None` (the test is skipped)
    /// without a test server.
    async fn fresh_store(test: &str) -> Option<(crate::PgStore, sqlx::PgPool)> {
        let (store, _) = crate::test_store_and_options(test).await.unwrap()?;
        let pool = store.pool.clone();
        Some((store, pool))
    }

    /// A fresh store on the test server holding tenant 1, and its pool; `None` (the test is
    /// skipped) without a test server.
    async fn store_with_tenant(test: &str) -> Option<(crate::PgStore, sqlx::PgPool)> {
        let (store, pool) = fresh_store(test).await?;
        sqlx::raw_sql(
            "INSERT INTO tenants (id, name, tenant_key, created_at) VALUES (1, 'Acme', 'k', 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        Some((store, pool))
    }

    /// Texts keyed in their order, as a sample of 8 000 users spread over a table of a
    /// million: a key every 125.
    fn keyed(texts: Vec<String>) -> Vec<(i64, String)> {
        (0_i64..).map(|i| i * 125).zip(texts).collect()
    }

    /// A statement inserting active users, one per `g` of `generate_series(from, to)`, with
    /// the key, tenant and search text that the SQL expressions of `g` give.
    fn users_of_series(from: i64, to: i64, key: &str, tenant: &str, text: &str) -> String {
        format!(
            "INSERT INTO users (id, tenant_id, open_id, union_id, user_id, user_id_fold, name, \
               is_resigned, is_frozen, is_activated, is_exited, is_unjoin, created_at, \
               updated_at, doc, search_text) \
             SELECT {key}, {tenant}, 'ou_' || g, 'on_' || g, 'u' || g, 'u' || g, 'n', false, \
               false, true, false, false, 0, 0, '{{}}', {text} \
             FROM generate_series({from}, {to}) g"
        )
    }

    /// The index asked for `t` alone, for the whole table at once.
    fn whole(t: &str) -> Plan {
        Plan::Indexed(IndexPlan {
            trigrams: [t.to_owned(), t.to_owned(), t.to_owned()],
            blocks: 0,
        })
    }

    /// A sample of `n` texts: `common` of them hold `zhangwei` (so `ang` and `wei` are
    /// common), one holds `mafangting`, and every text holds the digits `000` (as every
    /// mobile of a country does) while only `dense` hold `000000`.
    fn sample(n: usize, dense: usize) -> Sample {
        let texts = (0..n)
            .map(|i| {
                let name = if i % 3 == 0 { "zhangwei" } else { "lina" };
                let extra = if i == 7 { " mafangting" } else { "" };
                let digits = if i < dense { "000000" } else { "130009" };
                format!("[\"{name}{extra}\",\"{digits}{i:05}\"]")
            })
            .collect();
        Sample::of(keyed(texts), 1_000_000.0, WordChars::Unicode)
    }

    #[test]
    fn a_sample_is_thinned_evenly_over_the_table() {
        let mut v: Vec<u32> = (0..10).collect();
        thin(&mut v, 5);
        assert_eq!(v, [0, 2, 4, 6, 8]);
        let mut v: Vec<u32> = (0..10_000).collect();
        thin(&mut v, 8000);
        assert_eq!(v.len(), 8000);
        // The last rows of the table are in it, not only the first 8 000.
        assert!(v.last().is_some_and(|&x| x >= 9998), "{:?}", v.last());
        let mut v: Vec<u32> = (0..3).collect();
        thin(&mut v, 5);
        assert_eq!(v, [0, 1, 2]);
    }

    #[test]
    fn a_sample_lists_each_trigrams_holders_once_in_key_order() {
        // Keys out of order: the lists are places in the sorted sample.
        let s = Sample::of(
            vec![
                (30, "[\"wangwei\"]".to_owned()),
                (10, "[\"zhangwei\",\"weiwei\"]".to_owned()),
                (20, "[\"lina\"]".to_owned()),
            ],
            3.0,
            WordChars::Unicode,
        );
        assert_eq!(s.keys, [10, 20, 30]);
        assert_eq!(s.holding(['w', 'e', 'i']), [0, 2]);
        assert_eq!(s.holding(['a', 'n', 'g']), [0, 2]);
        assert_eq!(s.holding(['l', 'i', 'n']), [1]);
        assert!(s.holding(['x', 'y', 'z']).is_empty());
    }

    #[test]
    fn trigrams_are_the_windows_pg_trgm_indexes() {
        let t = |q: &str| -> Vec<String> {
            trigrams(q, WordChars::Unicode)
                .iter()
                .map(|t| t.iter().collect())
                .collect()
        };
        assert_eq!(t("ngwei"), ["ngw", "gwe", "wei"]);
        // The punctuation of e-mails and names is part of a word, spelt as its letter.
        assert_eq!(
            t("ab.cde"),
            ["ab\u{16A0}", "b\u{16A0}c", "\u{16A0}cd", "cde"]
        );
        assert_eq!(
            t("i.1@x"),
            ["i\u{16A0}1", "\u{16A0}1\u{16A1}", "1\u{16A1}x"]
        );
        // Other characters split words; no window spans them.
        assert_eq!(t("ab/cde"), ["cde"]);
        assert!(t("a b").is_empty());
        assert_eq!(t("马芳婷"), ["马芳婷"]);
        assert_eq!(t("000000"), ["000"]);
    }

    #[test]
    fn in_a_database_of_ascii_word_characters_trigrams_are_ascii() {
        // `C` or `POSIX`: pg_trgm splits words at punctuation's letters and at every other
        // character beyond ASCII, so the store asks for none of those trigrams.
        let t = |q: &str| -> Vec<String> {
            trigrams(q, WordChars::Ascii)
                .iter()
                .map(|t| t.iter().collect())
                .collect()
        };
        assert_eq!(t("jie.93"), ["jie"]);
        assert!(t("马芳婷").is_empty());
        assert_eq!(t("ngwei"), ["ngw", "gwe", "wei"]);
    }

    #[test]
    fn an_empty_sample_asks_the_index_for_the_first_trigrams() {
        // Read before the first import: no density to price with, so the plan used without
        // a sample, rather than walking every tenant to the end for a rare query.
        let s = Sample::of(Vec::new(), 1_000_000.0, WordChars::Unicode);
        let t = |x: &str| x.to_owned();
        assert_eq!(
            s.plan("mafang", 25, -1),
            Plan::Indexed(IndexPlan {
                trigrams: [t("maf"), t("afa"), t("fan")],
                blocks: 0
            })
        );
        assert_eq!(s.plan("a/b", 25, -1), Plan::WalkAll);
    }

    #[test]
    fn a_query_with_a_rare_trigram_asks_the_index_for_it_alone() {
        // `maf` and the other trigrams of `fangting` are in one sampled text each, `ang` in
        // a third of them: no second trigram removes a candidate the sample can see, and
        // each would cost its posting list and a re-check.
        let s = sample(6000, 10);
        assert_eq!(s.plan("mafangting", 32, -1), whole("maf"));
    }

    #[test]
    fn a_second_trigram_is_asked_for_when_it_removes_most_candidates() {
        // `n.7` is in 347 of 8 000 texts, `jia` in 694, and 27 hold both (`jian.7`); `an.`
        // is in 1 627, all of whose `n.7` holders hold `jia` too.
        let texts: Vec<String> = (0..8000)
            .map(|i| {
                let name = if i % 300 == 0 {
                    "jian.7"
                } else if i % 25 == 1 {
                    "lin.7"
                } else if i % 12 == 2 {
                    "jiang.1"
                } else if i % 5 == 3 {
                    "yan.5"
                } else {
                    "zhou.3"
                };
                format!("[\"{name}{i}@corp.example.com\"]")
            })
            .collect();
        let s = Sample::of(keyed(texts), 1_000_000.0, WordChars::Unicode);
        let priced = s.trigrams_to_ask("jian.7").unwrap();
        let n7 = "n\u{16A0}7".to_owned();
        assert_eq!(priced.three, [n7.clone(), "jia".to_owned(), n7]);
        // Against `n.7` alone: 43 000 candidates, 3 400 with `jia`.
        assert!(priced.whole < 50_000.0, "{}", priced.whole);
    }

    #[test]
    fn blocks_are_asked_for_only_when_they_promise_far_less_than_the_whole_table() {
        // Three sampled holders of `xiqz.7` among 16 000 texts of two million users, so
        // the whole table's statement hands over about 375 candidates (about 2 200 rows of
        // a walk, whatever the cursor). Held near the first key, the page lies in the first
        // block (about 170 rows of a walk): blocks first. Spread over the first 14 000 texts, it is
        // estimated eight blocks away, 0.6 of the whole table: too near a guess to be worth
        // its risk, so the whole table at once.
        let texts = |at: [usize; 3]| -> Vec<(i64, String)> {
            let texts = (0..16_000)
                .map(|i| {
                    let mail = if at.contains(&i) { "xiqz.7" } else { "zhou.31" };
                    format!("[\"{mail}{i}@corp.example.com\"]")
                })
                .collect();
            keyed(texts)
        };
        let near = Sample::of(texts([0, 100, 200]), 2_000_000.0, WordChars::Unicode);
        match near.plan("xiqz.7", 25, -1) {
            Plan::Indexed(IndexPlan { blocks, .. }) => assert!(blocks >= 2, "{blocks}"),
            other => panic!("{other:?}"),
        }
        let spread = Sample::of(texts([0, 7000, 14_000]), 2_000_000.0, WordChars::Unicode);
        match spread.plan("xiqz.7", 25, -1) {
            Plan::Indexed(IndexPlan { blocks, .. }) => assert_eq!(blocks, 0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dense_query_walks_and_hands_over_to_the_index() {
        // `qiang` in 5% of the sample: a page is a walk of about 640 rows, while the index
        // would hand over 50 000 candidates, or 820 for the first block of keys. A walk that
        // finds fewer than the sample said goes on through the index from where it
        // stopped, a block at a time.
        let texts = (0..8000)
            .map(|i| {
                let name = if i % 20 == 0 { "liqiang" } else { "zhaomin" };
                format!("[\"{name}\",\"1390{i:07}\"]")
            })
            .collect();
        match Sample::of(keyed(texts), 1_000_000.0, WordChars::Unicode).plan("qiang", 32, -1) {
            Plan::Walk { rows, then } => {
                // At least twice the rows expected (640), and as many as the first block
                // through the index would cost (400 + 820 candidates at 5.6 rows each).
                assert!((4_000..6_000).contains(&rows), "{rows}");
                assert_eq!(then.trigrams[0], "qia", "{then:?}");
                assert!(then.blocks >= 2, "{then:?}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_query_of_trigrams_every_user_holds_walks_to_the_end() {
        // `000000` in a fifth of the sample, or in none of it: every user holds `000`, so
        // the index would hand over the whole table (1.7 s at a million users, sorted),
        // where a walk reads at most the table and stops at a page.
        assert_eq!(sample(6000, 1200).plan("000000", 32, -1), Plan::WalkAll);
        assert_eq!(sample(6000, 0).plan("000000", 32, -1), Plan::WalkAll);
    }

    #[test]
    fn a_common_trigram_is_not_asked_for_beside_a_rare_one() {
        // Every mobile holds `300`; `004` and `049` are in 2% of the texts and `499` in 0.5%.
        // The index is never asked for `300`, whose posting list is the table.
        let texts = (0..8000)
            .map(|i| {
                let tail = match i % 200 {
                    0 => "0499",
                    1..=3 => "0490",
                    _ => "1234",
                };
                format!("[\"+8613000{tail}\"]")
            })
            .collect();
        let s = Sample::of(keyed(texts), 1_000_000.0, WordChars::Unicode);
        // `004` and `049` are held by every holder of `499` in the sample: asking for them
        // too removes no candidate.
        for q in ["3000499", "13000499"] {
            assert_eq!(s.plan(q, 32, -1), whole("499"), "{q}");
        }
        // `304` is in no sampled text, and every other trigram of the query is in 40 or
        // more: the unseen one is asked for alone.
        assert_eq!(s.plan("130499", 32, -1), whole("304"));
    }

    #[test]
    fn a_walk_is_chosen_by_how_far_the_holders_are_from_the_cursor() {
        // 1% of the sample holds `ing.82` either way: spread evenly, a page is a short
        // walk; bunched at the end of the key range, the walk would read nearly the whole
        // table first, so the index is asked (its candidates cost less than that).
        let texts = |holds: &dyn Fn(usize) -> bool| -> Vec<String> {
            (0..8000)
                .map(|i| {
                    let mail = if holds(i) { "ming.82" } else { "zhou.31" };
                    format!("[\"{mail}{i}@corp.example.com\"]")
                })
                .collect()
        };
        let even = Sample::of(
            keyed(texts(&|i| i % 100 == 7)),
            1_000_000.0,
            WordChars::Unicode,
        );
        // (The first block of keys through the index costs about as much as the walk.)
        let near = even.plan("ing.82", 25, -1);
        assert!(
            matches!(
                near,
                Plan::Walk { .. } | Plan::Indexed(IndexPlan { blocks: 1.., .. })
            ),
            "{near:?}"
        );
        let bunched = Sample::of(
            keyed(texts(&|i| i >= 7960)),
            1_000_000.0,
            WordChars::Unicode,
        );
        assert!(matches!(bunched.plan("ing.82", 25, -1), Plan::Indexed(_)));
        // From a cursor inside the bunch, the holders are near again.
        assert!(matches!(
            bunched.plan("ing.82", 25, 7930 * 125),
            Plan::Walk { .. }
        ));
    }

    #[test]
    fn a_query_without_trigrams_walks() {
        assert_eq!(sample(100, 0).plan("a/b", 32, -1), Plan::WalkAll);
    }

    /// The database spells punctuation as [`PUNCTUATION`] does, and `pg_trgm` keeps the
    /// letters inside words, so the index finds exactly the holders of a trigram that spans
    /// a `.` (in a database whose character type did not count them as letters, every query
    /// would still be answered, through less selective trigrams; this one must).
    #[tokio::test]
    async fn the_index_holds_trigrams_across_punctuation() {
        let Some((_store, pool)) = fresh_store("trigrams_across_punctuation").await else {
            return;
        };
        // The test server's databases are UTF-8 (`C.UTF-8` here); in a `C` one the store
        // detects ASCII word characters instead and asks for no trigram across punctuation.
        assert_eq!(
            WordChars::of(&pool).await.unwrap(),
            WordChars::Unicode,
            "the test database's character type splits words at the Runic letters"
        );
        let all: String = PUNCTUATION.iter().map(|p| p.0).collect();
        let mapped: String = sqlx::query_scalar("SELECT roster_trigram_text($1)")
            .bind(format!("a{all}/b"))
            .fetch_one(&pool)
            .await
            .unwrap();
        let letters: String = PUNCTUATION.iter().map(|p| p.1).collect();
        assert_eq!(mapped, format!("a{letters}/b"));

        sqlx::raw_sql(
            "INSERT INTO tenants (id, name, tenant_key, created_at) VALUES (1, 'Acme', 'k', 0)",
        )
        .execute(&pool)
        .await
        .unwrap();
        // Every user holds `jie` and `93`; only ids 3 and 8 hold `.93`.
        for id in 1..=10_i64 {
            let mail = if id == 3 || id == 8 {
                "jie.93"
            } else {
                "jie193"
            };
            sqlx::query(
                "INSERT INTO users (id, tenant_id, open_id, union_id, user_id, user_id_fold, \
                   name, is_resigned, is_frozen, is_activated, is_exited, is_unjoin, \
                   created_at, updated_at, doc, search_text) \
                 VALUES ($1, 1, 'ou_' || $1, 'on_' || $1, 'u' || $1, 'u' || $1, 'n', false, \
                   false, true, false, false, 0, 0, '{}', $2)",
            )
            .bind(id)
            .bind(format!("[\"{mail}{id}@corp.example.com\"]"))
            .execute(&pool)
            .await
            .unwrap();
        }
        let tris = trigrams(".93", WordChars::Unicode);
        assert_eq!(tris.len(), 1);
        let pattern = like_trigram(&tris[0].iter().collect::<String>());
        let mut conn = pool.acquire().await.unwrap();
        sqlx::raw_sql("SET enable_seqscan = off")
            .execute(&mut *conn)
            .await
            .unwrap();
        let plan: Vec<String> = sqlx::query_scalar(
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT id FROM users \
             WHERE NOT is_resigned AND roster_trigram_text(search_text) LIKE $1",
        )
        .bind(&pattern)
        .fetch_all(&mut *conn)
        .await
        .unwrap();
        // The bitmap index scan's rows are the index's candidates: the two holders only.
        let scan = plan
            .iter()
            .find(|l| l.contains("Bitmap Index Scan on users_search_block_trgm_idx"))
            .unwrap_or_else(|| panic!("{plan:#?}"));
        assert!(scan.contains("(actual rows=2 loops=1)"), "{plan:#?}");
        sqlx::raw_sql("RESET enable_seqscan")
            .execute(&mut *conn)
            .await
            .unwrap();
        drop(conn);
        let trigram: String = tris[0].iter().collect();
        let plan = Plan::Indexed(IndexPlan {
            trigrams: [trigram.clone(), trigram.clone(), trigram],
            blocks: 0,
        });
        let mut conn = pool.acquire().await.unwrap();
        let (found, exhausted) = run_plan(&mut conn, TenantId(1), "jie.93", -1, 10, plan)
            .await
            .unwrap();
        assert!(exhausted);
        let keys: Vec<i64> = found.iter().map(|r| r.0).collect();
        assert_eq!(keys, [3, 8]);
    }

    #[test]
    fn the_block_statements_spell_the_index_expression() {
        let migration = include_str!("../migrations/0017_search_trigrams_by_key_block.sql");
        let index = format!("gin ((id >> {KEY_BLOCK_SHIFT}),");
        assert!(migration.contains(&index), "{index}");
        let block = format!("AND (u.id >> {KEY_BLOCK_SHIFT}) = block");
        assert_eq!(migration.matches(&block).count(), 3, "{block}");
        for first in [
            format!("greatest(after_key, 0) >> {KEY_BLOCK_SHIFT};"),
            format!("since := (block << {KEY_BLOCK_SHIFT}) - 1;"),
        ] {
            assert!(migration.contains(&first), "{first}");
        }
    }

    /// `roster_substring_blocks` asks the index for the block and the trigram together, so
    /// that the index returns only that block's holders (counted by the statistics of the
    /// index, which PostgreSQL 15 flushes on request), and never reads the table whole.
    #[tokio::test]
    async fn a_block_is_read_through_the_index() {
        let Some((_store, pool)) = fresh_store("block_statement").await else {
            return;
        };
        // 30 000 users over keys 1..=60 000 (blocks 0 to 3), every third holding `qzx`.
        let users = users_of_series(
            1,
            30_000,
            "g * 2",
            "1",
            "CASE WHEN g % 3 = 0 THEN '[\"qzxwei\"]' ELSE '[\"zhangwei\"]' END",
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO tenants (id, name, tenant_key, created_at) VALUES (1, 'Acme', 'k', 0); \
             {users}; ANALYZE users;"
        )))
        .execute(&pool)
        .await
        .unwrap();
        let flushes: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'pg_stat_force_next_flush')",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        let mut conn = pool.acquire().await.unwrap();
        let counters = "SELECT i.idx_tup_read, t.seq_scan FROM pg_stat_user_indexes i \
             JOIN pg_stat_user_tables t ON t.relid = i.relid \
             WHERE i.indexrelname = 'users_search_block_trgm_idx'";
        if flushes {
            sqlx::raw_sql("SELECT pg_stat_force_next_flush()")
                .execute(&mut *conn)
                .await
                .unwrap();
        }
        let before: (i64, i64) = sqlx::query_as(counters)
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        // Block 1 from key 20 000 on, and block 2 after it (the page is not full).
        let rows: Vec<(i64, String, String)> = sqlx::query_as(super::SUBSTRING_BLOCKS)
            .bind(1_i64)
            .bind("qzx")
            .bind(20_000_i64)
            .bind(100_000_i32)
            .bind(2_i32)
            .bind("%qzx%")
            .bind(None::<String>)
            .bind(None::<String>)
            .fetch_all(&mut *conn)
            .await
            .unwrap();
        let keys: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let want: Vec<i64> = (1..=30_000_i64)
            .map(|g| g * 2)
            .filter(|k| k % 6 == 0 && *k > 20_000 && k >> KEY_BLOCK_SHIFT <= 2)
            .collect();
        assert_eq!(keys, want);
        if flushes {
            sqlx::raw_sql("SELECT pg_stat_force_next_flush()")
                .execute(&mut *conn)
                .await
                .unwrap();
            let after: (i64, i64) = sqlx::query_as(counters)
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            let in_blocks = (1..=30_000_i64)
                .filter(|g| g % 3 == 0 && (1..=2).contains(&((g * 2) >> KEY_BLOCK_SHIFT)))
                .count();
            assert_eq!(after.0 - before.0, i64::try_from(in_blocks).unwrap());
            assert_eq!(after.1, before.1, "the table was read whole");
        }
    }

    /// Users written land in the trigram index's pending list, which every search through
    /// the index reads; the end of a bulk write merges it.
    #[tokio::test]
    async fn a_bulk_write_ends_with_the_pending_list_merged() {
        let Some((store, pool)) = store_with_tenant("pending_list_merged").await else {
            return;
        };
        let insert =
            |from: i64| users_of_series(from, from + 999, "g", "1", "'[\"zhangwei' || g || '\"]'");
        let merge = "SELECT gin_clean_pending_list('users_search_block_trgm_idx'::regclass)";
        sqlx::raw_sql(sqlx::AssertSqlSafe(insert(1)))
            .execute(&pool)
            .await
            .unwrap();
        store.search_sample.bulk_write_ended(&pool).await;
        let left: i64 = sqlx::query_scalar(merge).fetch_one(&pool).await.unwrap();
        assert_eq!(left, 0);
        // Without it, the same write leaves pages pending.
        sqlx::raw_sql(sqlx::AssertSqlSafe(insert(1001)))
            .execute(&pool)
            .await
            .unwrap();
        let left: i64 = sqlx::query_scalar(merge).fetch_one(&pool).await.unwrap();
        assert!(left > 0, "{left}");
    }

    /// Trigrams that follow each other in the query are asked for as one pattern spelling
    /// them (as the index spells punctuation), runs that share no character as one pattern
    /// joined by `%`, and runs that share one apart.
    #[test]
    fn adjacent_trigrams_are_asked_for_as_one_pattern() {
        let ask = |q: &str, tris: &[&str]| {
            let owned: Vec<String> = tris.iter().map(|t| (*t).to_owned()).collect();
            let refs: Vec<&String> = owned.iter().collect();
            like_patterns(q, &refs)
        };
        assert_eq!(ask("004160", &["416", "160", "041"]), ["%04160%"]);
        assert_eq!(ask("004160", &["416", "160"]), ["%4160%"]);
        assert_eq!(ask("ming.6", &["gᚠ6", "ngᚠ"]), ["%ngᚠ6%"]);
        assert_eq!(ask("awei.4", &["awe", "iᚠ4"]), ["%awe%iᚠ4%"]);
        assert_eq!(ask("aaaa", &["aaa"]), ["%aaa%"]);
        assert_eq!(ask("huangchenyong", &["nyo", "ngc", "eny"]), ["%ngc%enyo%"]);
        // `abc` and `cde` share the `c`: `'%abc%cde%'` would not match `abcde`.
        assert_eq!(ask("abcdef", &["abc", "cde"]), ["%abc%", "%cde%"]);
        assert_eq!(
            ask("abcdefg", &["abc", "cde", "efg"]),
            ["%abc%efg%", "%cde%"]
        );
        assert_eq!(
            ask("abcdefgh", &["abc", "def", "fgh"]),
            ["%abc%def%", "%fgh%"]
        );
        assert_eq!(ask("abc", &["xyz"]), ["%xyz%"]);
    }

    /// A sample stays in use while the statistics count few writes to `users` since it was
    /// read, and is read again after many.
    #[test]
    fn a_sample_is_current_until_many_writes() {
        let mut s = Sample::of(
            keyed(vec!["zhangwei".to_owned(); 100]),
            10_000.0,
            WordChars::Unicode,
        );
        assert!(
            !s.still_current(Some(5)),
            "a sample read without statistics"
        );
        s.writes = Some(1_000);
        assert!(s.still_current(Some(1_000)));
        assert!(s.still_current(Some(1_500)), "5% of 10 000 rows");
        assert!(!s.still_current(Some(1_501)));
        assert!(!s.still_current(Some(10)), "statistics reset");
        assert!(!s.still_current(None));
    }

    /// The statistics the store reads count every connection's writes once that
    /// connection reports them, and a sample read after a bulk write holds their count.
    #[tokio::test]
    async fn a_sample_reads_the_users_write_count() {
        let Some((store, pool)) = store_with_tenant("sample_write_count").await else {
            return;
        };
        let mut conn = pool.acquire().await.unwrap();
        // A backend reports its counts when idle, at most once a second unless asked.
        let mut insert = async |from: i64| {
            let text = "'[\"zhangwei' || g || '\"]'";
            sqlx::raw_sql(sqlx::AssertSqlSafe(users_of_series(
                from,
                from + 999,
                "g",
                "1",
                text,
            )))
            .execute(&mut *conn)
            .await
            .unwrap();
            sqlx::query("SELECT pg_stat_force_next_flush()")
                .execute(&mut *conn)
                .await
                .unwrap();
        };
        insert(1).await;
        store.search_sample.bulk_write_ended(&pool).await;
        let sample = store.search_sample.current.read().unwrap().clone().unwrap();
        let before = sample.writes.unwrap();
        assert!(before >= 1_000, "{before}");
        assert!(sample.still_current(read_writes(&pool).await));
        insert(1001).await;
        let after = read_writes(&pool).await.unwrap();
        assert_eq!(after - before, 1_000);
        assert!(!sample.still_current(Some(after)));
    }

    /// The functions a search runs its statements through plan them once per connection
    /// and without worker processes (migrations 0017 and 0018), whatever the session says.
    #[tokio::test]
    async fn search_functions_plan_generically_without_workers() {
        let Some((_store, pool)) = fresh_store("search_functions_settings").await else {
            return;
        };
        let settings: Vec<(String, Vec<String>)> = sqlx::query_as(
            "SELECT proname::text, coalesce(proconfig, '{}') FROM pg_proc \
             WHERE proname IN ('roster_search_terms', 'roster_substring_indexed', \
             'roster_substring_blocks') ORDER BY proname",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let names: Vec<&str> = settings.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "roster_search_terms",
                "roster_substring_blocks",
                "roster_substring_indexed"
            ]
        );
        for (name, config) in &settings {
            for setting in [
                "plan_cache_mode=force_generic_plan",
                "max_parallel_workers_per_gather=0",
            ] {
                assert!(config.iter().any(|c| c == setting), "{name}: {config:?}");
            }
        }
    }

    /// A walk reads only its tenant's active users, whatever the tenant: the prepared
    /// statement's generic plan (the one a connection keeps after five executions) walks
    /// `users_active_key_idx` (migration 0016) rather than the primary key, which would
    /// read every other tenant's rows before a later tenant's first.
    #[tokio::test]
    async fn a_walk_reads_only_its_tenants_users() {
        let Some((_store, pool)) = fresh_store("walk_reads_its_tenant").await else {
            return;
        };
        let users = users_of_series(
            1,
            3020,
            "g",
            "CASE WHEN g > 3000 THEN 2 ELSE 1 END",
            "'[\"zhangwei\"]'",
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO tenants (id, name, tenant_key, created_at) \
             VALUES (1, 'Large', 'k1', 0), (2, 'Small', 'k2', 0); \
             {users}; ANALYZE users;"
        )))
        .execute(&pool)
        .await
        .unwrap();
        let mut conn = pool.acquire().await.unwrap();
        sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
            .execute(&mut *conn)
            .await
            .unwrap();
        // The walk over the small tenant's 20 users, and a page of its export: each reads
        // them through the index, and no row of the other tenant.
        for (statement, args) in [
            (SUBSTRING_WALK, "2, 'zhang', -1, 100000, 25"),
            (crate::users::LIST_USERS, "2, -1, 100"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DEALLOCATE ALL; PREPARE page AS {statement}"
            )))
            .execute(&mut *conn)
            .await
            .unwrap();
            let plan: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE page({args})"
            )))
            .fetch_all(&mut *conn)
            .await
            .unwrap();
            let scan = plan
                .iter()
                .find(|l| l.contains("Index Scan using users_active_key_idx"))
                .unwrap_or_else(|| panic!("{plan:#?}"));
            assert!(scan.contains("(actual rows=20 loops=1)"), "{plan:#?}");
            assert!(
                !plan.iter().any(|l| l.contains("Rows Removed by Filter")),
                "{plan:#?}"
            );
        }
    }

    /// Every plan of the substring tier gives the same candidates in the same order: the
    /// walk alone, a walk too short for a page that hands over to the index where it
    /// stopped (the subtle part), the index alone, and all of them from a cursor.
    #[tokio::test]
    async fn every_substring_plan_finds_the_same_users_in_key_order() {
        let Some((_store, pool)) = fresh_store("every_substring_plan").await else {
            return;
        };
        sqlx::raw_sql("INSERT INTO tenants (id, name, tenant_key, created_at) VALUES (1, 'Acme', 'k', 0), (2, 'Other', 'k2', 0)")
            .execute(&pool)
            .await
            .unwrap();
        // 600 users of tenant 1 and some of tenant 2 between them, a key every 97 so that
        // they span five blocks of the index ([`KEY_BLOCK_SHIFT`]); every seventh holds
        // `ngting`, and every user holds `000`.
        let key = |i: i64| i * 97;
        assert_eq!(key(700) >> KEY_BLOCK_SHIFT, 4);
        for i in 1..=700_i64 {
            let id = key(i);
            let tenant = if i % 10 == 5 { 2 } else { 1 };
            let name = if i % 7 == 0 { "fangting" } else { "zhangwei" };
            let text = format!("[\"{name}\",\"13000{i:06}\"]");
            sqlx::query(
                "INSERT INTO users (id, tenant_id, open_id, union_id, user_id, user_id_fold, \
                   name, is_resigned, is_frozen, is_activated, is_exited, is_unjoin, \
                   created_at, updated_at, doc, search_text) \
                 VALUES ($1, $2, 'ou_' || $1, 'on_' || $1, 'u' || $1, 'u' || $1, $3, $4, \
                   false, true, false, false, 0, 0, '{}', $5)",
            )
            .bind(id)
            .bind(tenant)
            .bind(name)
            .bind(i % 50 == 0)
            .bind(text)
            .execute(&pool)
            .await
            .unwrap();
        }
        let expected: Vec<i64> = (1..=700)
            .filter(|i| i % 10 != 5 && i % 7 == 0 && i % 50 != 0)
            .map(key)
            .collect();
        let ask = |blocks: u32| IndexPlan {
            trigrams: ["ngt".to_owned(), "tin".to_owned(), "ing".to_owned()],
            blocks,
        };
        let plans = [
            Plan::WalkAll,
            Plan::Walk {
                rows: 5,
                then: ask(0),
            },
            // From the start, the walk's sixth and last row (key 7) is itself a holder.
            Plan::Walk {
                rows: 6,
                then: ask(0),
            },
            Plan::Walk {
                rows: 100_000,
                then: ask(0),
            },
            Plan::Walk {
                rows: 30,
                then: ask(2),
            },
            Plan::Indexed(ask(0)),
            Plan::Indexed(ask(1)),
            Plan::Indexed(ask(3)),
            // More blocks than the table spans: the empty ones are asked for too.
            Plan::Indexed(ask(9)),
        ];
        for plan in plans {
            let label = format!("{plan:?}");
            for (after, need) in [
                (-1, 1000),
                (-1, 3),
                (-1, 70),
                (key(140), 4),
                (20_000, 80),
                (key(690), 10),
            ] {
                let mut conn = pool.acquire().await.unwrap();
                let (found, exhausted) =
                    run_plan(&mut conn, TenantId(1), "ngting", after, need, plan.clone())
                        .await
                        .unwrap();
                let keys: Vec<i64> = found.iter().map(|r| r.0).collect();
                // The holders after the cursor in key order: at least `need` of them (the
                // index plan returns more at once), all of them when fewer remain.
                let holders: Vec<i64> = expected.iter().copied().filter(|k| *k > after).collect();
                let want = &holders[..keys.len().min(holders.len())];
                assert_eq!(keys, want, "{label}, after {after}, need {need}");
                assert!(
                    keys.len() >= need.min(holders.len()),
                    "{label}, after {after}, need {need}: {keys:?}"
                );
                // The tier says it has no more exactly when it returned the last holder
                // (or, short of a page, must have).
                if keys.len() < need {
                    assert!(exhausted, "{label}, after {after}, need {need}");
                }
                if exhausted {
                    assert_eq!(keys, holders, "{label}, after {after}, need {need}");
                }
            }
        }
    }
}
