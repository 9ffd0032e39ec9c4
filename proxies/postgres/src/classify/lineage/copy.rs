//! The format of a `COPY ... TO STDOUT`, from its options.

use sqlparser::ast::{CopyLegacyCsvOption, CopyLegacyOption, CopyOption};

use super::{CopyFormat, CopyKind};

pub(super) fn copy_format(options: &[CopyOption], legacy: &[CopyLegacyOption]) -> CopyFormat {
    let mut f = CopyFormat {
        kind: CopyKind::Text,
        delimiter: b'\t',
        quote: b'"',
        escape: 0,
        header: false,
    };
    let mut delimiter = None;
    for o in options {
        match o {
            CopyOption::Format(k) => match k.value.to_lowercase().as_str() {
                "csv" => f.kind = CopyKind::Csv,
                "binary" => f.kind = CopyKind::Binary,
                _ => f.kind = CopyKind::Text,
            },
            CopyOption::Delimiter(c) => delimiter = u8::try_from(*c).ok(),
            CopyOption::Quote(c) => f.quote = u8::try_from(*c).unwrap_or(b'"'),
            CopyOption::Escape(c) => f.escape = u8::try_from(*c).unwrap_or(0),
            CopyOption::Header(h) => f.header = *h,
            _ => {}
        }
    }
    for o in legacy {
        match o {
            CopyLegacyOption::Binary => f.kind = CopyKind::Binary,
            CopyLegacyOption::Delimiter(c) => delimiter = u8::try_from(*c).ok(),
            CopyLegacyOption::Csv(csv) => {
                f.kind = CopyKind::Csv;
                for c in csv {
                    match c {
                        CopyLegacyCsvOption::Header => f.header = true,
                        CopyLegacyCsvOption::Quote(q) => f.quote = u8::try_from(*q).unwrap_or(b'"'),
                        CopyLegacyCsvOption::Escape(e) => {
                            f.escape = u8::try_from(*e).unwrap_or(0);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    f.delimiter = delimiter.unwrap_or(if f.kind == CopyKind::Csv { b',' } else { b'\t' });
    if f.escape == 0 {
        f.escape = f.quote;
    }
    f
}
