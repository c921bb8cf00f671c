//! A job's record as layout 2 stores it (`j:<id>`, written by `lib.lua`'s `packRecord`):
//! 13 header fields ended by the unit separator 0x1f, then the inline options text and the
//! data, cut by the lengths the last two header fields give. The worker splits the record
//! the fetch script hands over as it is: splitting it in Lua cost Redis more.

const SEP: u8 = 0x1f;
const HEADER_FIELDS: usize = 13;

/// What a worker needs of a fetched job's record.
#[derive(Debug, PartialEq)]
pub struct Record {
    pub name: String,
    pub created_at: i64,
    pub group: Option<String>,
    /// The options text when the record holds it (its reference is then empty).
    pub inline_opts: String,
    pub data: String,
}

impl Record {
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        let mut fields = [&raw[..0]; HEADER_FIELDS];
        let mut rest = raw;
        for field in fields.iter_mut() {
            let end = rest
                .iter()
                .position(|&b| b == SEP)
                .ok_or("the job record has fewer fields than layout 2 writes")?;
            *field = &rest[..end];
            rest = &rest[end + 1..];
        }
        let number = |bytes: &[u8], what: &str| -> Result<usize, String> {
            std::str::from_utf8(bytes)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| format!("the job record's {what} is not a number"))
        };
        let opts_len = number(fields[11], "options length")?;
        let data_len = number(fields[12], "data length")?;
        if rest.len() < opts_len + data_len {
            return Err("the job record is shorter than its lengths say".into());
        }
        let text = |bytes: &[u8], what: &str| -> Result<String, String> {
            String::from_utf8(bytes.to_vec()).map_err(|_| format!("the job's {what} is not UTF-8"))
        };
        let group = text(fields[6], "group")?;
        Ok(Self {
            name: text(fields[1], "name")?,
            // A damaged time is no reason to fail the job: it reads as unknown (0).
            created_at: number(fields[3], "creation time").unwrap_or(0) as i64,
            group: (!group.is_empty()).then_some(group),
            inline_opts: text(&rest[..opts_len], "options")?,
            data: text(&rest[opts_len..opts_len + data_len], "data")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(group: &str, opts: &str, data: &str) -> Vec<u8> {
        let header = [
            "1",
            "send",
            "3",
            "1700000000000",
            "0",
            "0",
            group,
            "",
            "",
            "",
            "",
        ];
        let mut raw = header.join("\x1f");
        raw.push_str(&format!(
            "\x1f{}\x1f{}\x1f{opts}{data}",
            opts.len(),
            data.len()
        ));
        raw.into_bytes()
    }

    #[test]
    fn splits_the_header_and_cuts_the_texts_by_their_lengths() {
        // The data may hold the separator: only the lengths cut it.
        let mut raw = record("g1", "{}", "{\"a\":\"\x1f\"}");
        raw.extend_from_slice(b"completed\x1f1\x1f4\x1fnull"); // an outcome after it
        let parsed = Record::parse(&raw).unwrap();
        assert_eq!(
            parsed,
            Record {
                name: "send".into(),
                created_at: 1_700_000_000_000,
                group: Some("g1".into()),
                inline_opts: "{}".into(),
                data: "{\"a\":\"\x1f\"}".into(),
            }
        );
        assert_eq!(Record::parse(&record("", "", "1")).unwrap().group, None);
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_panic() {
        assert!(Record::parse(b"no separators").is_err());
        let mut short = record("", "", "{\"long\":1}");
        short.truncate(short.len() - 3);
        assert!(Record::parse(&short).is_err());
    }
}
