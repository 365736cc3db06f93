//! One line of a send log taken apart: `t_ms,kind[,recipient[,slices]]`, unquoted as CSV where a
//! field is quoted, the kind checked against the kind-name rule and the slices against theirs.

use std::ops::Range;

use super::LogError;
use super::log::parse_ms;
use crate::name;
use crate::slice::Slices;

/// Where a line's kind, recipient and slices are: in the line as it stands, or taken out of
/// their quotes into bytes of their own.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Fields {
    At(Columns),
    Unquoted(Vec<u8>, Columns),
}

/// The kind's range, and the recipient's and slices' if the line has them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Columns {
    pub(super) kind: Range<usize>,
    pub(super) recipient: Option<Range<usize>>,
    pub(super) slices: Option<Range<usize>>,
}

impl Columns {
    pub(super) fn shifted(self, by: usize) -> Self {
        let shift = |range: Range<usize>| range.start + by..range.end + by;
        Self {
            kind: shift(self.kind),
            recipient: self.recipient.map(shift),
            slices: self.slices.map(shift),
        }
    }
}

/// The time and the fields of a line (without its end), the kind checked against the name rule
/// and the slices against theirs.
pub(super) fn parse_line(line: &[u8], number: u64) -> Result<(u64, Fields), LogError> {
    if line.contains(&b'"') {
        let fields = unquote(line, number)?;
        let (time, rest) = fields
            .split_first()
            .filter(|(_, rest)| !rest.is_empty())
            .ok_or_else(|| malformed(number, "no comma after the time"))?;
        let t_ms = time_of(time.trim_ascii(), number)?;
        let mut bytes = Vec::new();
        let mut ranges = rest.iter().map(|field| {
            let field = field.trim_ascii();
            let start = bytes.len();
            bytes.extend_from_slice(field);
            start..bytes.len()
        });
        let columns = Columns {
            kind: ranges.next().unwrap_or_default(),
            recipient: ranges.next(),
            slices: ranges.next(),
        };
        check_columns(&bytes, &columns, number)?;
        return Ok((t_ms, Fields::Unquoted(bytes, columns)));
    }
    let mut fields = line.splitn(5, |&b| b == b',');
    let time = fields.next().unwrap_or_default().trim_ascii();
    let Some(kind) = fields.next() else {
        return Err(malformed(number, "no comma after the time"));
    };
    let recipient = fields.next();
    let slices = fields.next();
    if fields.next().is_some() {
        return Err(malformed(number, "more than four columns"));
    }
    let t_ms = time_of(time, number)?;
    let at = |field: &[u8]| {
        let field = field.trim_ascii();
        let start = field.as_ptr() as usize - line.as_ptr() as usize;
        start..start + field.len()
    };
    let columns = Columns {
        kind: at(kind),
        recipient: recipient.map(at),
        slices: slices.map(at),
    };
    check_columns(line, &columns, number)?;
    Ok((t_ms, Fields::At(columns)))
}

fn check_columns(line: &[u8], columns: &Columns, number: u64) -> Result<(), LogError> {
    check_kind(&line[columns.kind.clone()], number)?;
    if let Some(range) = &columns.slices {
        let text = std::str::from_utf8(&line[range.clone()])
            .map_err(|_| malformed(number, "the slices are not UTF-8"))?;
        Slices::parse(text).map_err(|problem| LogError::Slices {
            line: number,
            problem,
        })?;
    }
    if let Some(range) = &columns.recipient {
        std::str::from_utf8(&line[range.clone()])
            .map_err(|_| malformed(number, "the recipient is not UTF-8"))?;
    }
    Ok(())
}

pub(super) fn malformed(line: u64, what: &'static str) -> LogError {
    LogError::Malformed { line, what }
}

#[inline]
fn time_of(time: &[u8], line: u64) -> Result<u64, LogError> {
    parse_ms(time).ok_or_else(|| LogError::Time {
        line,
        value: name::shown(&String::from_utf8_lossy(time)),
    })
}

#[inline]
fn check_kind(kind: &[u8], line: u64) -> Result<(), LogError> {
    // Most kinds are short and printable ASCII: one pass over the bytes decides them.
    if name::plain(kind) {
        return Ok(());
    }
    let text = std::str::from_utf8(kind).map_err(|_| malformed(line, "the kind is not UTF-8"))?;
    match name::problem(text) {
        None => Ok(()),
        Some(_) if text.is_empty() => Err(LogError::EmptyKind { line }),
        Some(reason) => Err(LogError::InvalidKind {
            line,
            kind: name::shown(text),
            reason,
        }),
    }
}

/// The fields of a line with quotes, as CSV reads them (`"a, b"` is one field, `""` a quote).
fn unquote(line: &[u8], number: u64) -> Result<Vec<Vec<u8>>, LogError> {
    use csv_core::ReadRecordResult;
    if line.iter().filter(|&&b| b == b'"').count() % 2 == 1 {
        return Err(malformed(number, "a quoted field does not end on its line"));
    }
    let mut reader = csv_core::Reader::new();
    let mut output = vec![0; line.len()];
    let mut ends = [0; 4];
    let (mut input, mut written, mut fields) = (line, 0, 0);
    // The whole line, then the end of the input, which ends the record.
    for _ in 0..2 {
        let (result, read, wrote, ended) =
            reader.read_record(input, &mut output[written..], &mut ends[fields..]);
        input = &input[read..];
        (written, fields) = (written + wrote, fields + ended);
        match result {
            ReadRecordResult::InputEmpty => {}
            ReadRecordResult::OutputEndsFull => return Err(malformed(number, "more than four columns")),
            ReadRecordResult::Record | ReadRecordResult::End | ReadRecordResult::OutputFull => break,
        }
    }
    let mut start = 0;
    Ok(ends[..fields]
        .iter()
        .map(|&end| {
            let field = output[start..end].to_vec();
            start = end;
            field
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(kind: Range<usize>) -> Fields {
        Fields::At(Columns {
            kind,
            ..Columns::default()
        })
    }

    #[test]
    fn lines_parse_into_time_and_fields() {
        let parse = |line: &[u8]| parse_line(line, 1);
        assert_eq!(parse(b"12,a.b").unwrap(), (12, at(3..6)));
        let (_, fields) = parse(b" 12 , a.b , r@x").unwrap();
        assert_eq!(
            fields,
            Fields::At(Columns {
                kind: 6..9,
                recipient: Some(12..15),
                slices: None
            })
        );
        let (_, fields) = parse(b"12,sms.otp,+447700900123,prefix=+447;tenant=acme").unwrap();
        let Fields::At(columns) = fields else {
            panic!("{fields:?}")
        };
        assert_eq!(columns.slices, Some(25..48));
        let (t, fields) = parse(b"12,\"a, b\"").unwrap();
        assert_eq!(
            (t, fields),
            (
                12,
                Fields::Unquoted(
                    b"a, b".to_vec(),
                    Columns {
                        kind: 0..4,
                        ..Columns::default()
                    }
                )
            )
        );
        let (_, fields) = parse(b"\"12\",\"say \"\"hi\"\"\",\"Doe, Jo\",\"tenant=a,b\"").unwrap();
        let Fields::Unquoted(bytes, columns) = fields else {
            panic!("{fields:?}")
        };
        assert_eq!(&bytes[columns.kind], b"say \"hi\"");
        assert_eq!(&bytes[columns.recipient.unwrap()], b"Doe, Jo");
        assert_eq!(&bytes[columns.slices.unwrap()], b"tenant=a,b");
        let error = |line: &[u8]| parse_line(line, 4).unwrap_err();
        assert!(matches!(error(b"12"), LogError::Malformed { line: 4, .. }));
        assert!(matches!(error(b"1,a,b,c=d,e"), LogError::Malformed { .. }));
        assert!(matches!(
            error(b"1,\"a\",\"b\",\"c=d\",\"e\""),
            LogError::Malformed { .. }
        ));
        assert!(matches!(error(b"1,\"a,b"), LogError::Malformed { .. }));
        assert!(matches!(error(b"12, "), LogError::EmptyKind { line: 4 }));
        assert!(matches!(error(b"12,\"\""), LogError::EmptyKind { line: 4 }));
        assert!(matches!(error(b"x1,a"), LogError::Time { line: 4, .. }));
        assert!(matches!(error(b"1,\xff"), LogError::Malformed { .. }));
        assert!(matches!(
            error(b"1,a\x1b[2Jb"),
            LogError::InvalidKind { line: 4, .. }
        ));
        let slices = error(b"1,a,r,prefix").to_string();
        assert_eq!(slices, "line 4: slices: slice \"prefix\" is not `name=value`");
    }

    #[test]
    fn log_content_in_errors_is_escaped_and_shortened() {
        let error = parse_line(b"\x1b]0;pwned\x07,a", 9).unwrap_err().to_string();
        assert_eq!(
            error,
            r#"line 9: time "\u{1b}]0;pwned\u{7}" is not a whole number of milliseconds"#
        );
        let long = "9".repeat(100) + "x";
        let error = parse_line(format!("{long},a").as_bytes(), 1)
            .unwrap_err()
            .to_string();
        assert!(error.len() < 140 && error.contains("(101 bytes)"), "{error}");
    }
}
