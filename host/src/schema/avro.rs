//! Avro's binary encoding, read into the JSON a function sees and written from the JSON it
//! emits, guided by the writer's schema (a field the JSON leaves out is written as its
//! default, else as null). Not Avro object container files: registry-framed records carry
//! one datum each.
//!
//! The JSON of a datum: records are objects, maps objects, arrays
//! arrays; a union is the value of its branch, with no wrapper; enums are their symbol;
//! `bytes` and `fixed` are base64 (standard alphabet, padded); `decimal` is a string with
//! exactly the schema's scale ("12.30"); `float`/`double` are numbers, NaN and the
//! infinities the strings "NaN", "Infinity", "-Infinity"; every other logical type
//! (timestamps, dates, times, uuid) is its underlying value: a number or a string.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Number, Value};

/// A parsed Avro schema: a tree whose named types are defined once and referred to.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    root: Type,
    named: BTreeMap<String, Type>,
}

#[derive(Debug, Clone)]
enum Type {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Array(Box<Type>),
    Map(Box<Type>),
    Union(Vec<Type>),
    Record(Vec<Field>),
    Enum(Vec<String>),
    Fixed(usize),
    /// `bytes` or `fixed` (of the size) with a decimal logical type.
    Decimal {
        scale: u32,
        fixed: Option<usize>,
    },
    /// A named type defined elsewhere in the schema, by full name.
    Ref(String),
}

/// A field of a record.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    t: Type,
    /// What is written when the JSON has no such field.
    default: Option<Value>,
}

/// Why a datum does not fit its schema.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    /// The schema text is not a valid Avro schema.
    #[error("invalid Avro schema: {0}")]
    Schema(String),
    /// The payload does not decode with the schema.
    #[error("the payload is not Avro of its schema: {0}")]
    Decode(String),
    /// The JSON does not fit the schema.
    #[error("the value does not fit the Avro schema: {0}")]
    Encode(String),
}

type Result<T> = std::result::Result<T, AvroError>;

fn schema_error(message: impl Into<String>) -> AvroError {
    AvroError::Schema(message.into())
}

impl AvroSchema {
    /// Parses a schema in Avro's JSON form.
    pub fn parse(text: &str) -> Result<AvroSchema> {
        let json: Value =
            serde_json::from_str(text).map_err(|e| schema_error(format!("not JSON: {e}")))?;
        let mut named = BTreeMap::new();
        let root = parse_type(&json, None, &mut named)?;
        let schema = AvroSchema { root, named };
        schema.check_refs(&schema.root)?;
        for t in schema.named.values() {
            schema.check_refs(t)?;
        }
        Ok(schema)
    }

    /// The full name of the schema's root type, when it is a named one (a record, an
    /// enum, a fixed).
    pub fn name(&self) -> Option<&str> {
        match &self.root {
            Type::Ref(name) => Some(name),
            _ => None,
        }
    }

    fn check_refs(&self, t: &Type) -> Result<()> {
        match t {
            Type::Ref(name) if !self.named.contains_key(name) => {
                Err(schema_error(format!("unknown type {name:?}")))
            }
            Type::Array(inner) | Type::Map(inner) => self.check_refs(inner),
            Type::Union(branches) => branches.iter().try_for_each(|b| self.check_refs(b)),
            Type::Record(fields) => fields.iter().try_for_each(|f| self.check_refs(&f.t)),
            _ => Ok(()),
        }
    }

    fn resolve<'a>(&'a self, t: &'a Type) -> &'a Type {
        match t {
            Type::Ref(name) => self.named.get(name).unwrap_or(t),
            _ => t,
        }
    }

    /// Decodes one datum that fills `payload` exactly.
    pub fn decode(&self, payload: &[u8]) -> Result<Value> {
        let mut reader = Reader {
            bytes: payload,
            at: 0,
            // Values of no bytes (nulls, empty records) must not multiply unbounded.
            values_left: 100_000 + 16 * payload.len(),
        };
        let value = self.read(&self.root, &mut reader, 0)?;
        if reader.at != payload.len() {
            return Err(AvroError::Decode(format!(
                "{} bytes left after the datum",
                payload.len() - reader.at
            )));
        }
        Ok(value)
    }

    /// Encodes `value` as one datum.
    pub fn encode(&self, value: &Value) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut walk = Walk {
            steps: 0,
            strict: false,
        };
        self.write(&self.root, value, &mut out, "$", 0, &mut walk)?;
        Ok(out)
    }

    fn read(&self, t: &Type, r: &mut Reader<'_>, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(AvroError::Decode("nested too deeply".into()));
        }
        r.values_left = r
            .values_left
            .checked_sub(1)
            .ok_or_else(|| AvroError::Decode("more values than its bytes can hold".into()))?;
        Ok(match self.resolve(t) {
            Type::Null => Value::Null,
            Type::Boolean => match r.byte()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                b => return Err(AvroError::Decode(format!("boolean byte {b}"))),
            },
            Type::Int => {
                let n = r.long()?;
                i32::try_from(n).map_err(|_| AvroError::Decode(format!("int {n} out of range")))?;
                Value::from(n)
            }
            Type::Long => Value::from(r.long()?),
            Type::Float => float(f64::from(f32::from_le_bytes(r.array()?))),
            Type::Double => float(f64::from_le_bytes(r.array()?)),
            Type::Bytes => Value::String(BASE64.encode(r.sized()?)),
            Type::String => {
                let bytes = r.sized()?;
                let text = std::str::from_utf8(bytes)
                    .map_err(|_| AvroError::Decode("a string is not UTF-8".into()))?;
                Value::String(text.to_owned())
            }
            Type::Fixed(size) => Value::String(BASE64.encode(r.take(*size)?)),
            Type::Decimal { scale, fixed } => {
                let bytes = match fixed {
                    Some(size) => r.take(*size)?,
                    None => r.sized()?,
                };
                Value::String(decimal_text(bytes, *scale)?)
            }
            Type::Enum(symbols) => {
                let i = r.long()?;
                let symbol = usize::try_from(i)
                    .ok()
                    .and_then(|i| symbols.get(i))
                    .ok_or_else(|| AvroError::Decode(format!("enum index {i}")))?;
                Value::String(symbol.clone())
            }
            Type::Union(branches) => {
                let i = r.long()?;
                let branch = usize::try_from(i)
                    .ok()
                    .and_then(|i| branches.get(i))
                    .ok_or_else(|| AvroError::Decode(format!("union branch {i}")))?;
                self.read(branch, r, depth + 1)?
            }
            Type::Array(items) => {
                let mut out = Vec::new();
                r.blocks(|r| {
                    out.push(self.read(items, r, depth + 1)?);
                    Ok(())
                })?;
                Value::Array(out)
            }
            Type::Map(values) => {
                let mut out = Map::new();
                r.blocks(|r| {
                    let key = self.read(&Type::String, r, depth + 1)?;
                    let value = self.read(values, r, depth + 1)?;
                    if let Value::String(key) = key {
                        out.insert(key, value);
                    }
                    Ok(())
                })?;
                Value::Object(out)
            }
            Type::Record(fields) => {
                let mut out = Map::new();
                for field in fields {
                    out.insert(field.name.clone(), self.read(&field.t, r, depth + 1)?);
                }
                Value::Object(out)
            }
            Type::Ref(name) => return Err(AvroError::Decode(format!("unknown type {name:?}"))),
        })
    }

    /// A field's default as the JSON [`write`](Self::write) takes: Avro writes the default
    /// of `bytes` and `fixed` (and of a union whose first branch is one) as a string of
    /// code points 0 to 255, not base64.
    fn default_json(&self, t: &Type, default: &Value) -> Value {
        let t = match self.resolve(t) {
            Type::Union(branches) => branches.first().map_or(t, |b| self.resolve(b)),
            other => other,
        };
        match (t, default) {
            (Type::Bytes | Type::Fixed(_) | Type::Decimal { .. }, Value::String(s)) => {
                let bytes: Option<Vec<u8>> = s.chars().map(|c| u8::try_from(c).ok()).collect();
                bytes.map_or(Value::Null, |b| Value::String(BASE64.encode(b)))
            }
            _ => default.clone(),
        }
    }

    fn write(
        &self,
        t: &Type,
        value: &Value,
        out: &mut Vec<u8>,
        path: &str,
        depth: usize,
        walk: &mut Walk,
    ) -> Result<()> {
        let mismatch = |expected: &str| {
            AvroError::Encode(format!(
                "{path}: expected {expected}, found {}",
                json_kind(value)
            ))
        };
        if depth > MAX_DEPTH {
            return Err(AvroError::Encode(format!("{path}: nested too deeply")));
        }
        walk.steps += 1;
        if walk.steps > MAX_STEPS {
            return Err(AvroError::Encode(format!(
                "{path}: the value takes more than {MAX_STEPS} steps to fit the schema"
            )));
        }
        let strict = walk.strict;
        match (self.resolve(t), value) {
            // Inside a union, a string goes to a string (or enum) branch before any other.
            (
                Type::Bytes | Type::Fixed(_) | Type::Decimal { .. } | Type::Float | Type::Double,
                Value::String(_),
            ) if strict => {
                return Err(mismatch("a value of this branch exactly"));
            }
            (Type::Null, Value::Null) => {}
            (Type::Boolean, Value::Bool(b)) => out.push(u8::from(*b)),
            (Type::Int, Value::Number(n)) => {
                let n = n
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(|| mismatch("an int"))?;
                write_long(out, i64::from(n));
            }
            (Type::Long, Value::Number(n)) => {
                write_long(out, n.as_i64().ok_or_else(|| mismatch("a long"))?)
            }
            (Type::Float, v) => {
                let f = json_float(v).ok_or_else(|| mismatch("a float"))?;
                let single = f as f32;
                if f.is_finite() && !single.is_finite() {
                    return Err(mismatch("a number within a float's range"));
                }
                out.extend_from_slice(&single.to_le_bytes());
            }
            (Type::Double, v) => {
                let f = json_float(v).ok_or_else(|| mismatch("a double"))?;
                out.extend_from_slice(&f.to_le_bytes());
            }
            (Type::String, Value::String(s)) => write_sized(out, s.as_bytes()),
            (Type::Bytes, Value::String(s)) => {
                let bytes = BASE64.decode(s).map_err(|_| mismatch("base64 bytes"))?;
                write_sized(out, &bytes);
            }
            (Type::Fixed(size), Value::String(s)) => {
                let bytes = BASE64.decode(s).map_err(|_| mismatch("base64 bytes"))?;
                if bytes.len() != *size {
                    return Err(mismatch(&format!("{size} bytes")));
                }
                out.extend_from_slice(&bytes);
            }
            (Type::Decimal { scale, fixed }, v) => {
                let unscaled = decimal_unscaled(v, *scale)
                    .ok_or_else(|| mismatch(&format!("a decimal with at most {scale} places")))?;
                let bytes = twos_complement(unscaled, *fixed)
                    .ok_or_else(|| mismatch("a decimal that fits its size"))?;
                match fixed {
                    Some(_) => out.extend_from_slice(&bytes),
                    None => write_sized(out, &bytes),
                }
            }
            (Type::Enum(symbols), Value::String(s)) => {
                let i = symbols
                    .iter()
                    .position(|sym| sym == s)
                    .ok_or_else(|| mismatch(&format!("one of {symbols:?}")))?;
                write_long(out, i as i64);
            }
            (Type::Union(branches), v) => {
                // JSON names no branch: the first the value fits exactly (no object key
                // the record lacks, no string taken for bytes or a number), else the
                // first it fits at all.
                for exact in [true, false] {
                    for (i, branch) in branches.iter().enumerate() {
                        let mut attempt = Vec::new();
                        write_long(&mut attempt, i as i64);
                        walk.strict = exact;
                        let fits = self.write(branch, v, &mut attempt, path, depth + 1, walk);
                        walk.strict = strict;
                        if let Err(AvroError::Encode(why)) = &fits
                            && why.contains("steps to fit")
                        {
                            return fits;
                        }
                        if fits.is_ok() {
                            out.extend_from_slice(&attempt);
                            return Ok(());
                        }
                    }
                }
                return Err(mismatch("a value of one of the union's branches"));
            }
            (Type::Array(items), Value::Array(values)) => {
                if !values.is_empty() {
                    write_long(out, values.len() as i64);
                    for (i, v) in values.iter().enumerate() {
                        self.write(items, v, out, &format!("{path}[{i}]"), depth + 1, walk)?;
                    }
                }
                write_long(out, 0);
            }
            (Type::Map(types), Value::Object(entries)) => {
                if !entries.is_empty() {
                    write_long(out, entries.len() as i64);
                    for (key, v) in entries {
                        write_sized(out, key.as_bytes());
                        self.write(types, v, out, &format!("{path}.{key}"), depth + 1, walk)?;
                    }
                }
                write_long(out, 0);
            }
            (Type::Record(fields), Value::Object(entries)) => {
                if strict
                    && let Some(key) = entries
                        .keys()
                        .find(|k| !fields.iter().any(|f| f.name == **k))
                {
                    return Err(mismatch(&format!("a record without the key {key:?}")));
                }
                for field in fields {
                    let path = format!("{path}.{}", field.name);
                    match (entries.get(&field.name), &field.default) {
                        (Some(v), _) => self.write(&field.t, v, out, &path, depth + 1, walk)?,
                        (None, Some(default)) => {
                            let default = self.default_json(&field.t, default);
                            self.write(&field.t, &default, out, &path, depth + 1, walk)?;
                        }
                        (None, None) => {
                            self.write(&field.t, &Value::Null, out, &path, depth + 1, walk)?
                        }
                    }
                }
            }
            (Type::Null, _) => return Err(mismatch("null")),
            (Type::Boolean, _) => return Err(mismatch("a boolean")),
            (Type::Int | Type::Long, _) => return Err(mismatch("an integer")),
            (Type::String | Type::Enum(_), _) => return Err(mismatch("a string")),
            (Type::Bytes | Type::Fixed(_), _) => return Err(mismatch("base64 bytes")),
            (Type::Array(_), _) => return Err(mismatch("an array")),
            (Type::Map(_) | Type::Record(_), _) => return Err(mismatch("an object")),
            (Type::Ref(name), _) => {
                return Err(AvroError::Encode(format!("unknown type {name:?}")));
            }
        }
        Ok(())
    }
}

/// Deeper values than this are refused, so a hostile schema or payload cannot exhaust
/// the stack.
const MAX_DEPTH: usize = 64;

/// Most values one encoding may visit, tries of union branches included, so that a
/// schema whose unions nest cannot make an emit take exponential time.
const MAX_STEPS: usize = 1_000_000;

/// Largest `fixed` a schema may declare: no record the host takes is larger.
const MAX_FIXED: usize = 1 << 20;

/// Most digits of a decimal: what 128 bits hold.
const MAX_PRECISION: u64 = 38;

/// How an encoding goes: the values visited so far, and whether the branch being tried
/// must fit exactly.
struct Walk {
    steps: usize,
    strict: bool,
}

/// Longest a block count or a length may claim: more than any record can hold.
const MAX_LENGTH: i64 = 64 << 20;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    values_left: usize,
}

impl Reader<'_> {
    fn short() -> AvroError {
        AvroError::Decode("the payload ends inside a value".into())
    }

    fn byte(&mut self) -> Result<u8> {
        let b = *self.bytes.get(self.at).ok_or_else(Self::short)?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8]> {
        let end = self.at.checked_add(n).ok_or_else(Self::short)?;
        let bytes = self.bytes.get(self.at..end).ok_or_else(Self::short)?;
        self.at = end;
        Ok(bytes)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// A zigzag varint.
    fn long(&mut self) -> Result<i64> {
        let mut n: u64 = 0;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(AvroError::Decode("a varint is too long".into()));
            }
            n |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok((n >> 1) as i64 ^ -((n & 1) as i64));
            }
        }
        Err(AvroError::Decode("a varint is too long".into()))
    }

    fn length(&mut self) -> Result<usize> {
        let n = self.long()?;
        if !(0..=MAX_LENGTH).contains(&n) {
            return Err(AvroError::Decode(format!("a length of {n}")));
        }
        Ok(n as usize)
    }

    fn sized(&mut self) -> Result<&[u8]> {
        let n = self.length()?;
        self.take(n)
    }

    /// Reads array or map blocks, calling `item` once per item.
    fn blocks(&mut self, mut item: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        loop {
            let mut count = self.long()?;
            if count == 0 {
                return Ok(());
            }
            if count < 0 {
                // A negative count is followed by the block's size in bytes.
                count = count
                    .checked_neg()
                    .ok_or_else(|| AvroError::Decode("count".into()))?;
                self.length()?;
            }
            if count > MAX_LENGTH || count as usize > self.values_left {
                return Err(AvroError::Decode(format!("a block of {count} items")));
            }
            for _ in 0..count {
                item(self)?;
            }
        }
    }
}

fn write_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_sized(out: &mut Vec<u8>, bytes: &[u8]) {
    write_long(out, bytes.len() as i64);
    out.extend_from_slice(bytes);
}

fn float(f: f64) -> Value {
    match Number::from_f64(f) {
        Some(n) => Value::Number(n),
        None if f.is_nan() => Value::String("NaN".into()),
        None if f > 0.0 => Value::String("Infinity".into()),
        None => Value::String("-Infinity".into()),
    }
}

fn json_float(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            _ => None,
        },
        _ => None,
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The decimal text of a big-endian two's-complement unscaled value at `scale`.
fn decimal_text(mut bytes: &[u8], scale: u32) -> Result<String> {
    // A fixed wider than 16 bytes is sign-extended; those bytes say nothing.
    while bytes.len() > 16
        && ((bytes[0] == 0 && bytes[1] & 0x80 == 0) || (bytes[0] == 0xff && bytes[1] & 0x80 != 0))
    {
        bytes = &bytes[1..];
    }
    if bytes.len() > 16 {
        return Err(AvroError::Decode(format!(
            "a decimal of {} bytes (at most 16 are read)",
            bytes.len()
        )));
    }
    let mut n: i128 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        -1
    } else {
        0
    };
    for b in bytes {
        n = (n << 8) | i128::from(*b);
    }
    let digits = n.unsigned_abs().to_string();
    let scale = scale as usize;
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    let sign = if n < 0 { "-" } else { "" };
    Ok(if scale == 0 {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    })
}

/// The unscaled value of a decimal given as a string or a number, at `scale`.
fn decimal_unscaled(v: &Value, scale: u32) -> Option<i128> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.as_str()),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
        || fraction.len() > scale as usize
    {
        return None;
    }
    let padded = format!("{whole}{fraction:0<width$}", width = scale as usize);
    let n: i128 = padded.parse().ok()?;
    Some(if negative { -n } else { n })
}

/// `n` as big-endian two's complement: minimal, or sign-extended to `size` bytes.
fn twos_complement(n: i128, size: Option<usize>) -> Option<Vec<u8>> {
    let full = n.to_be_bytes();
    let fill = if n < 0 { 0xff } else { 0 };
    // The fewest bytes that keep the sign bit right.
    let mut start = 0;
    while start < 15 && full[start] == fill && (full[start + 1] & 0x80 == fill & 0x80) {
        start += 1;
    }
    let minimal = &full[start..];
    match size {
        None => Some(minimal.to_vec()),
        Some(size) if size >= minimal.len() => {
            let mut out = vec![fill; size - minimal.len()];
            out.extend_from_slice(minimal);
            Some(out)
        }
        Some(_) => None,
    }
}

/// The full name of a named type: its own namespace, or the enclosing one.
fn full_name(name: &str, namespace: Option<&str>) -> String {
    match namespace {
        _ if name.contains('.') => name.to_owned(),
        Some(ns) if !ns.is_empty() => format!("{ns}.{name}"),
        _ => name.to_owned(),
    }
}

fn parse_type(
    json: &Value,
    namespace: Option<&str>,
    named: &mut BTreeMap<String, Type>,
) -> Result<Type> {
    match json {
        Value::String(name) => Ok(primitive(name).unwrap_or_else(|| {
            let full = full_name(name, namespace);
            // A name from the enclosing namespace, or one given without a namespace.
            if named.contains_key(&full) || !named.contains_key(name) {
                Type::Ref(full)
            } else {
                Type::Ref(name.clone())
            }
        })),
        Value::Array(branches) => Ok(Type::Union(
            branches
                .iter()
                .map(|b| parse_type(b, namespace, named))
                .collect::<Result<_>>()?,
        )),
        Value::Object(object) => parse_complex(object, namespace, named),
        other => Err(schema_error(format!("a type cannot be {other}"))),
    }
}

fn primitive(name: &str) -> Option<Type> {
    Some(match name {
        "null" => Type::Null,
        "boolean" => Type::Boolean,
        "int" => Type::Int,
        "long" => Type::Long,
        "float" => Type::Float,
        "double" => Type::Double,
        "bytes" => Type::Bytes,
        "string" => Type::String,
        _ => return None,
    })
}

fn parse_complex(
    object: &Map<String, Value>,
    namespace: Option<&str>,
    named: &mut BTreeMap<String, Type>,
) -> Result<Type> {
    let kind = object
        .get("type")
        .ok_or_else(|| schema_error("a type object without \"type\""))?;
    let Value::String(kind) = kind else {
        return parse_type(kind, namespace, named);
    };
    let logical = object.get("logicalType").and_then(Value::as_str);
    let text = |key: &str| object.get(key).and_then(Value::as_str);
    // A named type's own namespace applies to the names inside it.
    let own_name = text("name").map(|name| full_name(name, text("namespace").or(namespace)));
    // Inside a named type, its own namespace (none for a name without one); elsewhere
    // the enclosing one.
    let inner_ns = match &own_name {
        Some(name) => name.rsplit_once('.').map(|(ns, _)| ns.to_owned()),
        None => namespace.map(str::to_owned),
    };
    let inner_ns = inner_ns.as_deref();
    // A decimal logical type that is not valid is ignored, as the specification says;
    // one of more digits than 128 bits hold cannot be read here.
    let decimal_scale = || -> Result<Option<u32>> {
        if logical != Some("decimal") {
            return Ok(None);
        }
        let precision = object.get("precision").and_then(Value::as_u64).unwrap_or(0);
        let scale = object.get("scale").and_then(Value::as_u64).unwrap_or(0);
        if precision == 0 || scale > precision {
            return Ok(None);
        }
        if precision > MAX_PRECISION {
            return Err(schema_error(format!(
                "a decimal of {precision} digits (at most {MAX_PRECISION} are supported)"
            )));
        }
        Ok(Some(scale as u32))
    };
    let t = match kind.as_str() {
        "record" | "error" => {
            let name = own_name
                .clone()
                .ok_or_else(|| schema_error("a record without a name"))?;
            // Defined before its fields, which may refer to it.
            named.insert(name.clone(), Type::Record(Vec::new()));
            let fields = object
                .get("fields")
                .and_then(Value::as_array)
                .ok_or_else(|| schema_error(format!("record {name} without fields")))?;
            let mut parsed = Vec::new();
            for field in fields {
                let field_name = field
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| schema_error(format!("a field of {name} without a name")))?;
                let field_type = field
                    .get("type")
                    .ok_or_else(|| schema_error(format!("field {field_name} without a type")))?;
                parsed.push(Field {
                    name: field_name.to_owned(),
                    t: parse_type(field_type, inner_ns, named)?,
                    default: field.get("default").cloned(),
                });
            }
            Type::Record(parsed)
        }
        "enum" => Type::Enum(
            object
                .get("symbols")
                .and_then(Value::as_array)
                .ok_or_else(|| schema_error("an enum without symbols"))?
                .iter()
                .map(|s| s.as_str().map(str::to_owned))
                .collect::<Option<_>>()
                .ok_or_else(|| schema_error("an enum symbol that is not a string"))?,
        ),
        "fixed" => {
            let size = object
                .get("size")
                .and_then(Value::as_u64)
                .ok_or_else(|| schema_error("a fixed without a size"))?;
            let size = usize::try_from(size)
                .ok()
                .filter(|s| *s <= MAX_FIXED)
                .ok_or_else(|| schema_error(format!("a fixed of {size} bytes")))?;
            match decimal_scale()? {
                Some(scale) => Type::Decimal {
                    scale,
                    fixed: Some(size),
                },
                None => Type::Fixed(size),
            }
        }
        "array" => Type::Array(Box::new(parse_type(
            object
                .get("items")
                .ok_or_else(|| schema_error("an array without items"))?,
            namespace,
            named,
        )?)),
        "map" => Type::Map(Box::new(parse_type(
            object
                .get("values")
                .ok_or_else(|| schema_error("a map without values"))?,
            namespace,
            named,
        )?)),
        "bytes" if decimal_scale()?.is_some() => Type::Decimal {
            scale: decimal_scale()?.unwrap_or(0),
            fixed: None,
        },
        other => match primitive(other) {
            Some(t) => t,
            None => parse_type(&Value::String(other.to_owned()), namespace, named)?,
        },
    };
    if let Some(name) = own_name {
        named.insert(name.clone(), t);
        return Ok(Type::Ref(name));
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ORDER: &str = r#"{
        "type": "record", "name": "Order", "namespace": "shop",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "quantity", "type": "int"},
            {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}},
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "note", "type": ["null", "string"], "default": null},
            {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID"]}},
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "attributes", "type": {"type": "map", "values": "double"}},
            {"name": "digest", "type": {"type": "fixed", "name": "Digest", "size": 4}},
            {"name": "previous", "type": ["null", "Order"]}
        ]
    }"#;

    fn order() -> Value {
        json!({
            "id": "o-1", "quantity": -3, "price": "12.30", "at": 1767225600000_i64,
            "note": null, "status": "PAID", "tags": ["a", "b"],
            "attributes": {"weight": 1.5}, "digest": "AQIDBA==",
            "previous": {
                "id": "o-0", "quantity": 1, "price": "-0.05", "at": 0, "note": "first",
                "status": "NEW", "tags": [], "attributes": {}, "digest": "AAAAAA==",
                "previous": null
            }
        })
    }

    #[test]
    fn a_datum_goes_round_through_its_schema() {
        let schema = AvroSchema::parse(ORDER).expect("schema");
        let bytes = schema.encode(&order()).expect("encode");
        assert_eq!(schema.decode(&bytes).expect("decode"), order());
    }

    #[test]
    fn bytes_are_read_as_avro_writes_them() {
        // {"id": "x", "n": 1, "f": 2.0} as any Avro writer encodes it.
        let schema = AvroSchema::parse(
            r#"{"type":"record","name":"R","fields":[{"name":"id","type":"string"},{"name":"n","type":"long"},{"name":"f","type":"float"}]}"#,
        )
        .expect("schema");
        let bytes = [2, b'x', 2, 0, 0, 0, 0x40];
        assert_eq!(
            schema.decode(&bytes).expect("decode"),
            json!({"id": "x", "n": 1, "f": 2.0})
        );
        assert_eq!(
            schema
                .encode(&json!({"id": "x", "n": 1, "f": 2.0}))
                .expect("a value"),
            bytes
        );
    }

    #[test]
    fn a_field_left_out_is_written_as_its_default() {
        let schema = AvroSchema::parse(
            r#"{"type":"record","name":"R","fields":[{"name":"id","type":"string"},{"name":"channel","type":"string","default":"web"}]}"#,
        )
        .expect("schema");
        let bytes = schema.encode(&json!({"id": "x"})).expect("encode");
        assert_eq!(
            schema.decode(&bytes).expect("decode"),
            json!({"id": "x", "channel": "web"})
        );
    }

    #[test]
    fn decimals_keep_their_scale_and_sign() {
        assert_eq!(decimal_text(&[0x04, 0xce], 2).expect("a value"), "12.30");
        assert_eq!(decimal_text(&[0xfb], 2).expect("a value"), "-0.05");
        assert_eq!(decimal_text(&[0x07], 0).expect("a value"), "7");
        assert_eq!(decimal_unscaled(&json!("12.3"), 2), Some(1230));
        assert_eq!(decimal_unscaled(&json!("1.234"), 2), None);
        assert_eq!(twos_complement(-5, None).expect("a value"), vec![0xfb]);
        assert_eq!(
            twos_complement(128, None).expect("a value"),
            vec![0x00, 0x80]
        );
        assert_eq!(
            twos_complement(-1, Some(3)).expect("a value"),
            vec![0xff; 3]
        );
    }

    #[test]
    fn bad_payloads_are_errors_not_panics() {
        let schema = AvroSchema::parse(ORDER).expect("schema");
        let bytes = schema.encode(&order()).expect("encode");
        for cut in 0..bytes.len() {
            assert!(schema.decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(schema.decode(&longer).is_err());
        // A huge claimed length.
        assert!(schema.decode(&[0xfe, 0xff, 0xff, 0xff, 0x0f]).is_err());
    }

    #[test]
    fn values_that_do_not_fit_are_named_by_path() {
        let schema = AvroSchema::parse(ORDER).expect("schema");
        let mut bad = order();
        bad["previous"]["quantity"] = json!("many");
        let err = schema.encode(&bad).expect_err("an error").to_string();
        assert!(err.contains("$.previous"), "{err}");
        let mut bad = order();
        bad["status"] = json!("LOST");
        let err = schema.encode(&bad).expect_err("an error").to_string();
        assert!(err.contains("$.status") && err.contains("NEW"), "{err}");
    }

    #[test]
    fn schema_mistakes_are_named() {
        for (text, says) in [
            ("{", "not JSON"),
            (r#"{"type":"record","name":"R"}"#, "without fields"),
            (
                r#"{"type":"record","name":"R","fields":[{"name":"a","type":"Nope"}]}"#,
                "Nope",
            ),
            (r#"{"type":"enum","name":"E"}"#, "symbols"),
        ] {
            let err = AvroSchema::parse(text).expect_err("an error").to_string();
            assert!(err.contains(says), "{text}: {err}");
        }
    }

    #[test]
    fn a_union_takes_the_branch_the_value_fits_exactly() {
        let schema = AvroSchema::parse(
            r#"[{"type":"record","name":"A","fields":[{"name":"x","type":["null","int"],"default":null}]},
                {"type":"record","name":"B","fields":[{"name":"y","type":"string"}]},
                "bytes", "string"]"#,
        )
        .expect("schema");
        for value in [json!({"y": "b"}), json!({"x": 1}), json!("test")] {
            let bytes = schema.encode(&value).expect("encode");
            assert_eq!(schema.decode(&bytes).expect("decode"), value);
        }
    }

    #[test]
    fn unions_nested_in_unions_cannot_make_an_encoding_endless() {
        let schema = AvroSchema::parse(
            r#"{"type":"record","name":"A","fields":[{"name":"n","type":["null","A",
                {"type":"record","name":"B","fields":[{"name":"n","type":["null","A","B"]},{"name":"tag","type":"string"}]}]},
                {"name":"tag","type":"int"}]}"#,
        )
        .expect("schema");
        let mut value = json!(null);
        for _ in 0..40 {
            value = json!({"n": value, "tag": "s"});
        }
        let started = std::time::Instant::now();
        assert!(schema.encode(&json!({"n": value, "tag": 1})).is_err());
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn values_of_no_bytes_cannot_multiply_past_a_bound() {
        let schema =
            AvroSchema::parse(r#"{"type":"array","items":{"type":"array","items":"null"}}"#)
                .expect("schema");
        // 1000 blocks of a million nulls each, in a few kilobytes.
        let mut payload = Vec::new();
        write_long(&mut payload, 1000);
        for _ in 0..1000 {
            write_long(&mut payload, 1_000_000);
            write_long(&mut payload, 0);
        }
        write_long(&mut payload, 0);
        assert!(schema.decode(&payload).is_err());
        // A few nulls more than bytes are fine.
        let small = [2, 20, 0, 0];
        assert_eq!(
            schema.decode(&small).expect("decode"),
            json!([vec![Value::Null; 10]])
        );
    }

    #[test]
    fn hostile_decimals_and_fixed_sizes_are_ignored_or_refused() {
        // A scale above the precision is not a valid decimal: plain bytes.
        let ignored = AvroSchema::parse(
            r#"{"type":"bytes","logicalType":"decimal","precision":1,"scale":4000000000}"#,
        )
        .expect("schema");
        assert_eq!(ignored.decode(&[2, 7]).expect("decode"), json!("Bw=="));
        assert!(
            AvroSchema::parse(
                r#"{"type":"bytes","logicalType":"decimal","precision":60,"scale":2}"#
            )
            .is_err()
        );
        assert!(AvroSchema::parse(r#"{"type":"fixed","name":"F","size":4000000000}"#).is_err());
        // A wide fixed decimal is sign-extended, as Java writes it.
        let wide = AvroSchema::parse(
            r#"{"type":"fixed","name":"W","size":20,"logicalType":"decimal","precision":30,"scale":2}"#,
        )
        .expect("schema");
        let bytes = wide.encode(&json!("-1.50")).expect("encode");
        assert_eq!(bytes.len(), 20);
        assert_eq!(wide.decode(&bytes).expect("decode"), json!("-1.50"));
    }

    #[test]
    fn a_bytes_default_is_its_code_points() {
        let schema = AvroSchema::parse(
            r#"{"type":"record","name":"R","fields":[{"name":"b","type":"bytes","default":"\u00ffA"}]}"#,
        )
        .expect("schema");
        let bytes = schema.encode(&json!({})).expect("encode");
        assert_eq!(
            schema.decode(&bytes).expect("decode"),
            json!({"b": BASE64.encode([0xff, b'A'])})
        );
    }

    #[test]
    fn an_empty_namespace_is_the_null_namespace() {
        let schema = AvroSchema::parse(
            r#"{"type":"record","name":"Outer","namespace":"a","fields":[
                {"name":"inner","type":{"type":"record","name":"Inner","namespace":"","fields":[
                    {"name":"e","type":{"type":"enum","name":"E","symbols":["X"]}}]}},
                {"name":"again","type":"E"}]}"#,
        )
        .expect("schema: E is in the null namespace");
        let value = json!({"inner": {"e": "X"}, "again": "X"});
        let bytes = schema.encode(&value).expect("encode");
        assert_eq!(schema.decode(&bytes).expect("decode"), value);
    }
}
