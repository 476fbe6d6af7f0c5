//! Schema JSON -> a compact encoding program.
//!
//! A schema is parsed once into a tree of [`Node`]s. Named types (record, enum, fixed) live in
//! an arena ([`Program::named`]) and are referred to by index, which makes references to an
//! earlier definition and recursive schemas (a record that contains itself) cheap and safe.
//! Logical types are encoded as their underlying type (e.g. `timestamp-millis` is a `long`).

use std::collections::HashMap;

use serde_json::Value;

/// One step of the encoding program.
#[derive(Debug)]
pub enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    /// Index into [`Program::named`].
    Record(usize),
    Enum(usize),
    Fixed(usize),
    Array(Box<Node>),
    Map(Box<Node>),
    Union(Box<Union>),
}

#[derive(Debug)]
pub struct Field {
    pub name: String,
    pub node: Node,
}

#[derive(Debug)]
pub enum NamedKind {
    /// Filled in after the definition's children are parsed (a placeholder while parsing).
    Pending,
    Record {
        fields: Vec<Field>,
    },
    Enum {
        symbols: Vec<String>,
        lookup: Option<HashMap<String, u32>>,
    },
    Fixed {
        size: usize,
    },
}

#[derive(Debug)]
pub struct Named {
    pub fullname: String,
    pub kind: NamedKind,
}

impl Named {
    pub fn enum_index(&self, symbol: &[u8]) -> Option<u32> {
        match &self.kind {
            NamedKind::Enum { symbols, lookup } => match lookup {
                Some(map) => std::str::from_utf8(symbol)
                    .ok()
                    .and_then(|s| map.get(s).copied()),
                None => symbols
                    .iter()
                    .position(|s| s.as_bytes() == symbol)
                    .map(|i| i as u32),
            },
            _ => None,
        }
    }
}

/// Python value categories a union dispatches on.
pub const K_NONE: usize = 0;
pub const K_BOOL: usize = 1;
pub const K_INT: usize = 2;
pub const K_FLOAT: usize = 3;
pub const K_STR: usize = 4;
pub const K_BYTES: usize = 5;
pub const K_TUPLE: usize = 6;
pub const K_LIST: usize = 7;
pub const K_DICT: usize = 8;
pub const K_OTHER: usize = 9;
pub const N_KINDS: usize = 10;

#[derive(Debug)]
pub struct Union {
    pub branches: Vec<Node>,
    /// Branch type names, for error messages.
    pub labels: Vec<String>,
    /// For each Python value kind, the branches that may take it, in order of preference.
    pub candidates: [Vec<u32>; N_KINDS],
}

/// A parsed schema.
#[derive(Debug)]
pub struct Program {
    pub root: Node,
    pub named: Vec<Named>,
    /// Full name of the top-level named type, or the type's JSON for other schemas.
    pub name: String,
}

const PRIMITIVES: [&str; 8] = [
    "null", "boolean", "int", "long", "float", "double", "bytes", "string",
];

fn primitive(name: &str) -> Option<Node> {
    Some(match name {
        "null" => Node::Null,
        "boolean" => Node::Boolean,
        "int" => Node::Int,
        "long" => Node::Long,
        "float" => Node::Float,
        "double" => Node::Double,
        "bytes" => Node::Bytes,
        "string" => Node::String,
        _ => return None,
    })
}

struct Parser {
    named: Vec<Named>,
    by_name: HashMap<String, usize>,
}

type PResult<T> = Result<T, String>;

/// Parse a schema JSON text into a [`Program`].
pub fn parse(text: &str) -> PResult<Program> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
    let mut parser = Parser {
        named: Vec::new(),
        by_name: HashMap::new(),
    };
    let root = parser.node(&value, "")?;
    let name = match &root {
        Node::Record(i) | Node::Enum(i) | Node::Fixed(i) => parser.named[*i].fullname.clone(),
        _ => value.to_string(),
    };
    Ok(Program {
        root,
        named: parser.named,
        name,
    })
}

impl Parser {
    fn node(&mut self, v: &Value, ns: &str) -> PResult<Node> {
        match v {
            Value::String(s) => self.reference(s, ns),
            Value::Array(items) => self.union(items, ns),
            Value::Object(obj) => {
                let ty = obj
                    .get("type")
                    .ok_or_else(|| format!("schema object without \"type\": {v}"))?;
                match ty {
                    Value::String(t) => match t.as_str() {
                        "record" | "error" => self.named_type(v, ns, "record"),
                        "enum" => self.named_type(v, ns, "enum"),
                        "fixed" => self.named_type(v, ns, "fixed"),
                        "array" => {
                            let items = obj.get("items").ok_or("array schema without \"items\"")?;
                            Ok(Node::Array(Box::new(self.node(items, ns)?)))
                        }
                        "map" => {
                            let values =
                                obj.get("values").ok_or("map schema without \"values\"")?;
                            Ok(Node::Map(Box::new(self.node(values, ns)?)))
                        }
                        // A primitive (logicalType and other attributes ignored) or a reference.
                        other => self.reference(other, ns),
                    },
                    // {"type": {...}} or {"type": [...]}: tolerated, as most parsers do.
                    Value::Object(_) | Value::Array(_) => self.node(ty, ns),
                    _ => Err(format!("invalid \"type\": {ty}")),
                }
            }
            _ => Err(format!("invalid schema: {v}")),
        }
    }

    fn reference(&self, name: &str, ns: &str) -> PResult<Node> {
        if let Some(node) = primitive(name) {
            return Ok(node);
        }
        let index = if name.contains('.') {
            self.by_name.get(name)
        } else if !ns.is_empty() {
            self.by_name
                .get(&format!("{ns}.{name}"))
                .or_else(|| self.by_name.get(name))
        } else {
            self.by_name.get(name)
        };
        let &index = index.ok_or_else(|| format!("unknown type {name:?}"))?;
        Ok(match self.named[index].kind {
            NamedKind::Enum { .. } => Node::Enum(index),
            NamedKind::Fixed { .. } => Node::Fixed(index),
            // Pending is a record under construction: a recursive reference.
            NamedKind::Record { .. } | NamedKind::Pending => Node::Record(index),
        })
    }

    fn named_type(&mut self, v: &Value, ns: &str, kind: &str) -> PResult<Node> {
        let obj = v.as_object().expect("object");
        let name = obj
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{kind} schema without a \"name\""))?;
        let (fullname, own_ns) = if let Some(dot) = name.rfind('.') {
            (name.to_string(), name[..dot].to_string())
        } else {
            let own_ns = match obj.get("namespace") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => ns.to_string(),
                Some(other) => return Err(format!("invalid namespace {other}")),
            };
            let full = if own_ns.is_empty() {
                name.to_string()
            } else {
                format!("{own_ns}.{name}")
            };
            (full, own_ns)
        };
        let short = fullname.rsplit('.').next().unwrap_or("");
        if short.is_empty() || PRIMITIVES.contains(&short) && !fullname.contains('.') {
            return Err(format!("invalid {kind} name {fullname:?}"));
        }
        if self.by_name.contains_key(&fullname) {
            return Err(format!("type {fullname:?} is defined twice"));
        }
        let index = self.named.len();
        self.named.push(Named {
            fullname: fullname.clone(),
            kind: NamedKind::Pending,
        });
        self.by_name.insert(fullname.clone(), index);
        let kind = match kind {
            "record" => {
                let fields = obj
                    .get("fields")
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("record {fullname:?} without a \"fields\" array"))?;
                let mut out: Vec<Field> = Vec::with_capacity(fields.len());
                for f in fields {
                    let fname = f
                        .get("name")
                        .and_then(Value::as_str)
                        .ok_or_else(|| format!("a field of record {fullname:?} has no \"name\""))?;
                    if out.iter().any(|o| o.name == fname) {
                        return Err(format!(
                            "record {fullname:?} has two fields named {fname:?}"
                        ));
                    }
                    let fty = f
                        .get("type")
                        .ok_or_else(|| format!("field {fullname}.{fname} has no \"type\""))?;
                    let node = self
                        .node(fty, &own_ns)
                        .map_err(|e| format!("field {fullname}.{fname}: {e}"))?;
                    out.push(Field {
                        name: fname.to_string(),
                        node,
                    });
                }
                NamedKind::Record { fields: out }
            }
            "enum" => {
                let symbols = obj
                    .get("symbols")
                    .and_then(Value::as_array)
                    .ok_or_else(|| format!("enum {fullname:?} without a \"symbols\" array"))?;
                let mut out: Vec<String> = Vec::with_capacity(symbols.len());
                for s in symbols {
                    let s = s
                        .as_str()
                        .ok_or_else(|| format!("enum {fullname:?}: symbol {s} is not a string"))?;
                    if out.iter().any(|o| o == s) {
                        return Err(format!("enum {fullname:?}: duplicate symbol {s:?}"));
                    }
                    out.push(s.to_string());
                }
                let lookup = if out.len() > 8 {
                    Some(
                        out.iter()
                            .enumerate()
                            .map(|(i, s)| (s.clone(), i as u32))
                            .collect(),
                    )
                } else {
                    None
                };
                NamedKind::Enum {
                    symbols: out,
                    lookup,
                }
            }
            _ => {
                let size = obj.get("size").and_then(Value::as_u64).ok_or_else(|| {
                    format!("fixed {fullname:?} without a non-negative integer \"size\"")
                })?;
                NamedKind::Fixed {
                    size: size as usize,
                }
            }
        };
        let node = match kind {
            NamedKind::Record { .. } => Node::Record(index),
            NamedKind::Enum { .. } => Node::Enum(index),
            _ => Node::Fixed(index),
        };
        self.named[index].kind = kind;
        Ok(node)
    }

    fn label(&self, node: &Node) -> String {
        match node {
            Node::Null => "null".into(),
            Node::Boolean => "boolean".into(),
            Node::Int => "int".into(),
            Node::Long => "long".into(),
            Node::Float => "float".into(),
            Node::Double => "double".into(),
            Node::Bytes => "bytes".into(),
            Node::String => "string".into(),
            Node::Record(i) | Node::Enum(i) | Node::Fixed(i) => self.named[*i].fullname.clone(),
            Node::Array(_) => "array".into(),
            Node::Map(_) => "map".into(),
            Node::Union(_) => "union".into(),
        }
    }

    fn union(&mut self, items: &[Value], ns: &str) -> PResult<Node> {
        let mut branches = Vec::with_capacity(items.len());
        for item in items {
            let node = self.node(item, ns)?;
            if matches!(node, Node::Union(_)) {
                return Err("a union may not immediately contain another union".into());
            }
            branches.push(node);
        }
        let labels: Vec<String> = branches.iter().map(|b| self.label(b)).collect();
        for (i, l) in labels.iter().enumerate() {
            if labels[..i].contains(l) {
                return Err(format!("union contains {l:?} twice"));
            }
        }
        let mut candidates: [Vec<u32>; N_KINDS] = Default::default();
        let pick = |pred: &dyn Fn(&Node) -> bool| -> Vec<u32> {
            branches
                .iter()
                .enumerate()
                .filter(|(_, b)| pred(b))
                .map(|(i, _)| i as u32)
                .collect()
        };
        candidates[K_NONE] = pick(&|b| matches!(b, Node::Null));
        candidates[K_BOOL] = pick(&|b| matches!(b, Node::Boolean));
        // An int prefers an integer branch (the first it fits), then double, then float.
        candidates[K_INT] = pick(&|b| matches!(b, Node::Int | Node::Long));
        candidates[K_INT].extend(pick(&|b| matches!(b, Node::Double)));
        candidates[K_INT].extend(pick(&|b| matches!(b, Node::Float)));
        // A float prefers double (no precision lost) over float.
        candidates[K_FLOAT] = pick(&|b| matches!(b, Node::Double));
        candidates[K_FLOAT].extend(pick(&|b| matches!(b, Node::Float)));
        candidates[K_STR] = pick(&|b| matches!(b, Node::String | Node::Enum(_)));
        candidates[K_BYTES] = pick(&|b| matches!(b, Node::Bytes | Node::Fixed(_)));
        candidates[K_TUPLE] = pick(&|b| matches!(b, Node::Record(_)));
        candidates[K_TUPLE].extend(pick(&|b| matches!(b, Node::Array(_))));
        candidates[K_LIST] = pick(&|b| matches!(b, Node::Array(_)));
        candidates[K_DICT] = pick(&|b| matches!(b, Node::Map(_)));
        Ok(Node::Union(Box::new(Union {
            branches,
            labels,
            candidates,
        })))
    }
}
