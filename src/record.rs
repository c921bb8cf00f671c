//! A job's record as layout 2 stores it (`j:<id>`, written by `lib.lua`'s `packRecord`):
//! 12 header fields ended by the unit separator 0x1f, then the inline options text (its
//! length is the last header field) and the data, to the end. The worker splits the record
//! the fetch script hands over as it is: splitting it in Lua cost Redis more.

const SEP: u8 = 0x1f;
const HEADER_FIELDS: usize = 12;
/// Ends each extension of field 11 (`lib.lua`'s `EXT_END`).
const EXT_END: char = '\x1e';

/// What a worker needs of a fetched job's record.
#[derive(Debug, PartialEq)]
pub struct Record {
    pub name: String,
    pub created_at: i64,
    pub group: Option<String>,
    /// The producer's trace context, when the job was added inside a trace.
    pub trace: Option<String>,
    /// A flow's child: its parent ref with its failure policy in front (`lib_flows.lua`).
    pub parent: Option<String>,
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
        if rest.len() < opts_len {
            return Err("the job record is shorter than its options length says".into());
        }
        let text = |bytes: &[u8], what: &str| -> Result<String, String> {
            String::from_utf8(bytes.to_vec()).map_err(|_| format!("the job's {what} is not UTF-8"))
        };
        let group = text(fields[6], "group")?;
        let (trace, parent) = extensions(text(fields[10], "extensions")?);
        Ok(Self {
            name: text(fields[1], "name")?,
            // A damaged time is no reason to fail the job: it reads as unknown (0).
            created_at: number(fields[3], "creation time").unwrap_or(0) as i64,
            group: (!group.is_empty()).then_some(group),
            trace,
            parent,
            inline_opts: text(&rest[..opts_len], "options")?,
            data: text(&rest[opts_len..], "data")?,
        })
    }
}

/// The trace context and the parent ref of field 11: extensions `<letter><value>`, each
/// ended by 0x1e; a field without it at its end is a bare trace context (written before
/// extensions), an empty one has neither.
fn extensions(field: String) -> (Option<String>, Option<String>) {
    if field.is_empty() {
        return (None, None);
    }
    let Some(body) = field.strip_suffix(EXT_END) else {
        return (Some(field), None);
    };
    let (mut trace, mut parent) = (None, None);
    for ext in body.split(EXT_END) {
        match ext.split_at_checked(1) {
            Some(("t", value)) => trace = Some(value.to_string()),
            Some(("p", value)) => parent = Some(value.to_string()),
            _ => {} // a later release's extension: not this worker's business
        }
    }
    (trace, parent)
}

/// The parent ref `<key base> <id>` with its policy letter in front, split: (policy, key
/// base, id).
pub fn split_parent(parent: &str) -> Option<(char, &str, &str)> {
    let policy = parent.chars().next()?;
    let (base, id) = parent[policy.len_utf8()..].split_once(' ')?;
    Some((policy, base, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(group: &str, opts: &str, data: &str) -> Vec<u8> {
        traced_record(group, "", opts, data)
    }

    fn traced_record(group: &str, trace: &str, opts: &str, data: &str) -> Vec<u8> {
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
            trace,
        ];
        let mut raw = header.join("\x1f");
        raw.push_str(&format!("\x1f{}\x1f{opts}{data}", opts.len()));
        raw.into_bytes()
    }

    #[test]
    fn splits_the_header_and_cuts_the_options_text_by_its_length() {
        // The options text and the data may hold the separator: only the length cuts them.
        let raw = record("g1", "{\"k\":\"\x1f\"}", "{\"a\":\"\x1f\"}");
        let parsed = Record::parse(&raw).unwrap();
        assert_eq!(
            parsed,
            Record {
                name: "send".into(),
                created_at: 1_700_000_000_000,
                group: Some("g1".into()),
                trace: None,
                parent: None,
                inline_opts: "{\"k\":\"\x1f\"}".into(),
                data: "{\"a\":\"\x1f\"}".into(),
            }
        );
        assert_eq!(Record::parse(&record("", "", "1")).unwrap().group, None);
    }

    #[test]
    fn reads_the_trace_context_field() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01 k=v";
        let raw = traced_record("", parent, "", "1");
        assert_eq!(Record::parse(&raw).unwrap().trace.as_deref(), Some(parent));
    }

    #[test]
    fn reads_the_extensions_of_field_11() {
        let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let ext = format!("t{parent}\x1efjq:{{images}}: 17\x1ex?\x1e");
        let raw = traced_record("", "", "", "1");
        assert_eq!(Record::parse(&raw).unwrap().parent, None);
        let parsed = Record::parse(&traced_record("", &ext, "", "1")).unwrap();
        assert_eq!(parsed.trace.as_deref(), Some(parent));
        assert_eq!(
            parsed.parent, None,
            "no p extension: the letter f is no parent"
        );
        let ext = format!("t{parent}\x1epfjq:{{images}}: 17\x1e");
        let parsed = Record::parse(&traced_record("", &ext, "", "1")).unwrap();
        assert_eq!(parsed.parent.as_deref(), Some("fjq:{images}: 17"));
        assert_eq!(
            split_parent("fjq:{images}: 17"),
            Some(('f', "jq:{images}:", "17"))
        );
    }

    #[test]
    fn a_damaged_record_is_an_error_not_a_panic() {
        assert!(Record::parse(b"no separators").is_err());
        let mut short = record("", "{\"long\":1}", "");
        short.truncate(short.len() - 3);
        assert!(Record::parse(&short).is_err());
    }
}
