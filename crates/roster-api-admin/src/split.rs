//! Splits a byte stream into records without holding more than one record: lines for
//! NDJSON, and for CSV records whose quoted cells may hold newlines. A record longer than
//! `MAX_ROW_BYTES` is not kept: its bytes are skipped up to its end and it is reported as
//! too long, so a malformed upload can never make the server buffer it whole.

use crate::rows::MAX_ROW_BYTES;

/// One record of the upload.
#[derive(Debug, PartialEq, Eq)]
pub enum Record {
    /// The record's bytes, without its line end.
    Data(Vec<u8>),
    /// A record over the row-size limit.
    TooLong,
}

/// The splitter's state between chunks of the body.
#[derive(Debug, Default)]
pub struct Splitter {
    csv: bool,
    buf: Vec<u8>,
    quote: Quote,
    oversize: bool,
}

/// Where a CSV record's bytes are with respect to quoting, as the `csv` crate that parses
/// each record reads them: a quote opens a quoted cell only as the cell's first byte (a
/// quote inside an unquoted cell, as in `O"Brien`, is an ordinary character), and inside a
/// quoted cell `""` is an escaped quote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Quote {
    /// At the first byte of a cell.
    #[default]
    CellStart,
    /// Inside an unquoted cell.
    Unquoted,
    /// Inside a quoted cell.
    Quoted,
    /// Just after a quote inside a quoted cell: it closed the cell, unless another quote
    /// follows (an escaped quote).
    Closing,
}

impl Splitter {
    /// A splitter for CSV (quote-aware) or NDJSON (plain lines).
    pub fn new(csv: bool) -> Self {
        Self {
            csv,
            ..Self::default()
        }
    }

    /// Feeds the next bytes; complete records are appended to `out`.
    pub fn feed(&mut self, mut data: &[u8], out: &mut Vec<Record>) {
        while !data.is_empty() {
            let end = if self.csv {
                self.csv_record_end(data)
            } else {
                data.iter().position(|&b| b == b'\n')
            };
            if let Some(i) = end {
                self.push(&data[..i]);
                self.emit(out);
                data = &data[i + 1..];
            } else {
                self.push(data);
                data = &[];
            }
        }
    }

    /// Ends the stream: a last record without a line end is emitted too.
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        self.emit(out);
    }

    /// The position of the line end ending the current CSV record in `data`, tracking quotes
    /// across calls. A line end is `\n`, `\r\n` or a bare `\r` (old Mac line ends), as the
    /// `csv` crate reads them: `\r\n` ends the record at the `\r` and leaves an empty record
    /// behind, which `emit` drops like any blank line.
    fn csv_record_end(&mut self, data: &[u8]) -> Option<usize> {
        for (i, &b) in data.iter().enumerate() {
            let line_end = b == b'\n' || b == b'\r';
            self.quote = match (self.quote, b) {
                (Quote::Quoted, b'"') => Quote::Closing,
                (Quote::Quoted, _) | (Quote::Closing | Quote::CellStart, b'"') => Quote::Quoted,
                (_, b',') => Quote::CellStart,
                (_, _) if line_end => {
                    self.quote = Quote::CellStart;
                    return Some(i);
                }
                (_, _) => Quote::Unquoted,
            };
        }
        None
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.oversize {
            return;
        }
        if self.buf.len() + bytes.len() > MAX_ROW_BYTES {
            self.oversize = true;
            self.buf = Vec::new();
        } else {
            self.buf.extend_from_slice(bytes);
        }
    }

    fn emit(&mut self, out: &mut Vec<Record>) {
        if std::mem::take(&mut self.oversize) {
            self.quote = Quote::CellStart;
            out.push(Record::TooLong);
            return;
        }
        let mut record = std::mem::take(&mut self.buf);
        if record.last() == Some(&b'\r') {
            record.pop();
        }
        // Blank lines are not rows.
        if !record.iter().all(u8::is_ascii_whitespace) {
            out.push(Record::Data(record));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(csv: bool, parts: &[&[u8]]) -> Vec<Record> {
        let mut s = Splitter::new(csv);
        let mut out = Vec::new();
        for p in parts {
            s.feed(p, &mut out);
        }
        s.finish(&mut out);
        out
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        let out = split(false, &[b"{\"a\":1}\n{\"b\"", b":2}\r\n\n", b"{\"c\":3}"]);
        assert_eq!(
            out,
            vec![
                Record::Data(b"{\"a\":1}".to_vec()),
                Record::Data(b"{\"b\":2}".to_vec()),
                Record::Data(b"{\"c\":3}".to_vec()),
            ]
        );
    }

    #[test]
    fn quoted_csv_newlines_stay_inside_their_record() {
        let out = split(true, &[b"name,city\n\"A\nB\",\"x\"\"", b"y\"\nC,z\n"]);
        assert_eq!(
            out,
            vec![
                Record::Data(b"name,city".to_vec()),
                Record::Data(b"\"A\nB\",\"x\"\"y\"".to_vec()),
                Record::Data(b"C,z".to_vec()),
            ]
        );
    }

    #[test]
    fn bare_carriage_returns_end_csv_records_as_the_csv_crate_reads_them() {
        let out = split(true, &[b"name,city\rA,x\r", b"\nB,\"y\rz\"\rC,w"]);
        assert_eq!(
            out,
            vec![
                Record::Data(b"name,city".to_vec()),
                Record::Data(b"A,x".to_vec()),
                Record::Data(b"B,\"y\rz\"".to_vec()),
                Record::Data(b"C,w".to_vec()),
            ]
        );
    }

    #[test]
    fn a_quote_inside_an_unquoted_cell_is_an_ordinary_character() {
        let out = split(true, &[b"O\"Brien,x\nA,\"q\"\"\",", b"\"z\"\nB,y\n"]);
        assert_eq!(
            out,
            vec![
                Record::Data(b"O\"Brien,x".to_vec()),
                Record::Data(b"A,\"q\"\"\",\"z\"".to_vec()),
                Record::Data(b"B,y".to_vec()),
            ]
        );
    }

    #[test]
    fn an_oversized_record_is_reported_and_skipped() {
        let big = vec![b'x'; MAX_ROW_BYTES + 1];
        let out = split(false, &[b"{}\n", &big, b"\n{\"n\":1}\n"]);
        assert_eq!(
            out,
            vec![
                Record::Data(b"{}".to_vec()),
                Record::TooLong,
                Record::Data(b"{\"n\":1}".to_vec()),
            ]
        );
    }
}
