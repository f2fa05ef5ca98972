//! A TOML document as a small tree of values that each know their 1-based line, so every
//! scenario error can name the line it is about (serde's derive loses nested positions).

use toml_edit::{Item, Table, Value};

/// One value of the document and the line it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// 1-based line.
    pub line: usize,
    /// The value.
    pub kind: Kind,
}

/// The value kinds a scenario uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A string.
    Str(String),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// An array (or an array of tables).
    Array(Vec<Node>),
    /// A table, keys in document order, each with the line of its key.
    Table(Vec<Entry>),
    /// A date or time: never valid in a scenario.
    Datetime,
}

/// A key of a table, its line, and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// 1-based line of the key.
    pub line: usize,
    /// The value.
    pub value: Node,
}

impl Kind {
    /// A short name for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Str(_) => "a string",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::Bool(_) => "a boolean",
            Kind::Array(_) => "an array",
            Kind::Table(_) => "a table",
            Kind::Datetime => "a date",
        }
    }
}

/// Why a document could not be read as TOML: the line and the parser's message.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// What the TOML parser said.
    pub message: String,
}

/// Parses TOML text into a [`Node`] tree (the root is a table).
pub fn parse(text: &str) -> Result<Node, SyntaxError> {
    let doc = toml_edit::ImDocument::parse(text).map_err(|e| SyntaxError {
        line: e.span().map(|s| line_of(text, s.start)).unwrap_or(1),
        message: e.message().trim().to_string(),
    })?;
    Ok(table(text, doc.as_table(), 1))
}

/// The 1-based line of a byte offset.
pub fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|t| t.matches('\n').count() + 1)
        .unwrap_or(1)
}

fn line(text: &str, span: Option<std::ops::Range<usize>>, fallback: usize) -> usize {
    span.map(|s| line_of(text, s.start)).unwrap_or(fallback)
}

fn table(text: &str, t: &Table, fallback: usize) -> Node {
    let here = line(text, t.span(), fallback);
    let mut entries = Vec::new();
    for (key, _) in t.iter() {
        let Some((k, item)) = t.get_key_value(key) else {
            continue;
        };
        let key_line = line(text, k.span(), here);
        if let Some(value) = item_node(text, item, key_line) {
            entries.push(Entry {
                key: key.to_string(),
                line: key_line,
                value,
            });
        }
    }
    Node {
        line: here,
        kind: Kind::Table(entries),
    }
}

fn item_node(text: &str, item: &Item, fallback: usize) -> Option<Node> {
    match item {
        Item::None => None,
        Item::Value(v) => Some(value(text, v, fallback)),
        Item::Table(t) => Some(table(text, t, fallback)),
        Item::ArrayOfTables(a) => {
            let here = line(text, a.span(), fallback);
            Some(Node {
                line: here,
                kind: Kind::Array(a.iter().map(|t| table(text, t, here)).collect()),
            })
        }
    }
}

fn value(text: &str, v: &Value, fallback: usize) -> Node {
    let here = line(text, v.span(), fallback);
    let kind = match v {
        Value::String(s) => Kind::Str(s.value().clone()),
        Value::Integer(i) => Kind::Int(*i.value()),
        Value::Float(f) => Kind::Float(*f.value()),
        Value::Boolean(b) => Kind::Bool(*b.value()),
        Value::Datetime(_) => Kind::Datetime,
        Value::Array(a) => Kind::Array(a.iter().map(|v| value(text, v, here)).collect()),
        Value::InlineTable(t) => {
            let mut entries = Vec::new();
            for (key, _) in t.iter() {
                let Some((k, item)) = t.get_key_value(key) else {
                    continue;
                };
                let key_line = line(text, k.span(), here);
                if let Some(value) = item_node(text, item, key_line) {
                    entries.push(Entry {
                        key: key.to_string(),
                        line: key_line,
                        value,
                    });
                }
            }
            Kind::Table(entries)
        }
    };
    Node { line: here, kind }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_kept_for_nested_values() {
        let text =
            "name = \"x\"\n\n[[leg]]\nname = \"a\"\nsteps = [\n  \"answer\",\n  { wait = 1 },\n]\n";
        let root = parse(text).unwrap();
        let Kind::Table(top) = &root.kind else {
            panic!()
        };
        let leg = &top[1];
        assert_eq!(leg.key, "leg");
        let Kind::Array(legs) = &leg.value.kind else {
            panic!()
        };
        let Kind::Table(fields) = &legs[0].kind else {
            panic!()
        };
        assert_eq!(fields[0].line, 4);
        let Kind::Array(steps) = &fields[1].value.kind else {
            panic!()
        };
        assert_eq!(steps[0].line, 6);
        assert_eq!(steps[1].line, 7);
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let e = parse("a = 1\n\nb = = 2\n").unwrap_err();
        assert_eq!(e.line, 3);
    }
}
