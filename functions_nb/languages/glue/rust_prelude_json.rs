// JSON helpers (serde_json), added to the prelude when a signature needs them.
/// The first integer in JSON text that fits neither i64 nor u64: serde_json would read it as
/// a float (a changed value), so the argument is refused naming it.
fn wide_integer(b: &[u8]) -> Option<&str> {
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' { i += if b[i] == b'\\' { 2 } else { 1 }; }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                i += 1;
                while i < b.len() && matches!(b[i], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') { i += 1; }
                let t = std::str::from_utf8(&b[start..i]).unwrap_or("");
                if t.bytes().all(|c| c == b'-' || c.is_ascii_digit()) && t.bytes().any(|c| c.is_ascii_digit())
                    && t.parse::<i64>().is_err() && t.parse::<u64>().is_err() { return Some(t) }
            }
            _ => i += 1,
        }
    }
    None
}
fn check_integers<T>(arg: &str, b: &[u8]) {
    if let Some(t) = wide_integer(b) {
        __bad_arg(&format!("argument '{}' holds the integer {}, beyond 64 bits: its type {} takes \
                            integers within i64 or u64 (serde_json would make it a float)", arg, t, std::any::type_name::<T>()))
    }
}
pub unsafe fn take_json<T: serde::de::DeserializeOwned>(arg: &str, ptr: *mut u8, len: usize) -> T {
    let bytes = unsafe { arg_slice::<u8>(ptr, len) };
    check_integers::<T>(arg, bytes);
    match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => __bad_arg(&format!("argument '{}' does not fit its type {}: {}", arg, std::any::type_name::<T>(), e)),
    }
}
pub fn ret_json<T: serde::Serialize>(v: &T) -> i64 {
    let mut out = Vec::with_capacity(128);
    match serde::Serialize::serialize(v, exact::Exact(&mut serde_json::Serializer::new(&mut out))) {
        Ok(()) => ret_bytes(out),
        Err(e) => { __fail(&format!("result is not JSON-serializable: {}", e)); 0 }
    }
}

/// serde_json writes NaN and the infinities as `null` (a changed value); results go through
/// this `Serializer`, which forwards everything to serde_json's but writes those floats as the
/// bare tokens `NaN`, `Infinity`, `-Infinity` (which the host's JSON reader takes), at any depth,
/// and an f32 as its exact double. A bare token is written through serde_json's raw-value path (feature `raw_value`).
mod exact {
    use serde::ser::{Serialize, SerializeMap, SerializeSeq, SerializeStruct, SerializeStructVariant,
                     SerializeTuple, SerializeTupleStruct, SerializeTupleVariant, Serializer};
    pub struct Exact<S>(pub S);
    struct Value<'a, T: ?Sized>(&'a T);
    impl<T: ?Sized + Serialize> Serialize for Value<'_, T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> { self.0.serialize(Exact(s)) }
    }
    const RAW: &str = "$serde_json::private::RawValue";
    fn bare<S: Serializer>(s: S, v: f64) -> Result<S::Ok, S::Error> {
        let token = if v.is_nan() { "NaN" } else if v > 0.0 { "Infinity" } else { "-Infinity" };
        let mut raw = s.serialize_struct(RAW, 1)?;
        raw.serialize_field(RAW, token)?;
        raw.end()
    }
    macro_rules! plain {
        ($($method:ident: $t:ty)*) => { $(
            fn $method(self, v: $t) -> Result<S::Ok, S::Error> { self.0.$method(v) }
        )* };
    }
    impl<S: Serializer> Serializer for Exact<S> {
        type Ok = S::Ok;
        type Error = S::Error;
        type SerializeSeq = Exact<S::SerializeSeq>;
        type SerializeTuple = Exact<S::SerializeTuple>;
        type SerializeTupleStruct = Exact<S::SerializeTupleStruct>;
        type SerializeTupleVariant = Exact<S::SerializeTupleVariant>;
        type SerializeMap = Exact<S::SerializeMap>;
        type SerializeStruct = Exact<S::SerializeStruct>;
        type SerializeStructVariant = Exact<S::SerializeStructVariant>;
        plain!(serialize_bool: bool serialize_i8: i8 serialize_i16: i16 serialize_i32: i32
               serialize_i64: i64 serialize_i128: i128 serialize_u8: u8 serialize_u16: u16
               serialize_u32: u32 serialize_u64: u64 serialize_u128: u128 serialize_char: char
               serialize_str: &str serialize_bytes: &[u8] serialize_unit_struct: &'static str);
        // an f32 as the double it is (0.1f32 is 0.10000000149011612, as an f32 result is;
        // serde_json's shortest f32 text "0.1" would read back as another value)
        fn serialize_f32(self, v: f32) -> Result<S::Ok, S::Error> {
            if v.is_finite() { self.0.serialize_f64(v as f64) } else { bare(self.0, v as f64) } }
        fn serialize_f64(self, v: f64) -> Result<S::Ok, S::Error> {
            if v.is_finite() { self.0.serialize_f64(v) } else { bare(self.0, v) } }
        fn serialize_none(self) -> Result<S::Ok, S::Error> { self.0.serialize_none() }
        fn serialize_unit(self) -> Result<S::Ok, S::Error> { self.0.serialize_unit() }
        fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<S::Ok, S::Error> { self.0.serialize_some(&Value(v)) }
        fn serialize_unit_variant(self, name: &'static str, i: u32, variant: &'static str) -> Result<S::Ok, S::Error> {
            self.0.serialize_unit_variant(name, i, variant) }
        fn serialize_newtype_struct<T: ?Sized + Serialize>(self, name: &'static str, v: &T) -> Result<S::Ok, S::Error> {
            self.0.serialize_newtype_struct(name, &Value(v)) }
        fn serialize_newtype_variant<T: ?Sized + Serialize>(self, name: &'static str, i: u32, variant: &'static str, v: &T) -> Result<S::Ok, S::Error> {
            self.0.serialize_newtype_variant(name, i, variant, &Value(v)) }
        fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> { self.0.serialize_seq(len).map(Exact) }
        fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> { self.0.serialize_tuple(len).map(Exact) }
        fn serialize_tuple_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeTupleStruct, S::Error> {
            self.0.serialize_tuple_struct(name, len).map(Exact) }
        fn serialize_tuple_variant(self, name: &'static str, i: u32, variant: &'static str, len: usize) -> Result<Self::SerializeTupleVariant, S::Error> {
            self.0.serialize_tuple_variant(name, i, variant, len).map(Exact) }
        fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> { self.0.serialize_map(len).map(Exact) }
        fn serialize_struct(self, name: &'static str, len: usize) -> Result<Self::SerializeStruct, S::Error> {
            self.0.serialize_struct(name, len).map(Exact) }
        fn serialize_struct_variant(self, name: &'static str, i: u32, variant: &'static str, len: usize) -> Result<Self::SerializeStructVariant, S::Error> {
            self.0.serialize_struct_variant(name, i, variant, len).map(Exact) }
        fn is_human_readable(&self) -> bool { self.0.is_human_readable() }
    }
    macro_rules! compound {
        ($($trait:ident: $method:ident)*) => { $(
            impl<S: $trait> $trait for Exact<S> {
                type Ok = S::Ok;
                type Error = S::Error;
                fn $method<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), S::Error> { self.0.$method(&Value(v)) }
                fn end(self) -> Result<S::Ok, S::Error> { self.0.end() }
            }
        )* };
    }
    compound!(SerializeSeq: serialize_element SerializeTuple: serialize_element
              SerializeTupleStruct: serialize_field SerializeTupleVariant: serialize_field);
    impl<S: SerializeMap> SerializeMap for Exact<S> {
        type Ok = S::Ok;
        type Error = S::Error;
        fn serialize_key<T: ?Sized + Serialize>(&mut self, k: &T) -> Result<(), S::Error> { self.0.serialize_key(&Value(k)) }
        fn serialize_value<T: ?Sized + Serialize>(&mut self, v: &T) -> Result<(), S::Error> { self.0.serialize_value(&Value(v)) }
        fn end(self) -> Result<S::Ok, S::Error> { self.0.end() }
    }
    macro_rules! fields {
        ($($trait:ident)*) => { $(
            impl<S: $trait> $trait for Exact<S> {
                type Ok = S::Ok;
                type Error = S::Error;
                fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, v: &T) -> Result<(), S::Error> {
                    self.0.serialize_field(key, &Value(v)) }
                fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> { self.0.skip_field(key) }
                fn end(self) -> Result<S::Ok, S::Error> { self.0.end() }
            }
        )* };
    }
    fields!(SerializeStruct SerializeStructVariant);
}
/// A JSON argument whose type borrows (`&[&str]`, a struct with `&'a str` fields): it borrows
/// from the argument's buffer, which lives until the wrapper returns. serde_json lends a
/// `&str` only for a string without escapes; the others are unescaped into the arena below
/// (alive until the wrapper's `Arena` guard drops, after the result is serialised) and lent
/// from there, so `"a\"b"` or `"\u00e9"` reach a `&str` like any other string.
pub unsafe fn take_json_borrowed<'de, T: serde::Deserialize<'de>>(arg: &str, ptr: *mut u8, len: usize) -> T {
    let bytes: &'de [u8] = unsafe { arg_slice::<u8>(ptr, len) };
    check_integers::<T>(arg, bytes);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = T::deserialize(lent::Lent(&mut de)).and_then(|v| de.end().map(|()| v));
    match value {
        Ok(v) => v,
        Err(e) => __bad_arg(&format!("argument '{}' does not fit its type {}: {}", arg, std::any::type_name::<T>(), e)),
    }
}
std::thread_local! { static ARENA: std::cell::RefCell<Vec<Box<[u8]>>> = const { std::cell::RefCell::new(Vec::new()) }; }
/// Frees the strings lent to one call's arguments when the entry wrapper returns.
pub struct Arena;
impl Arena { pub fn new() -> Arena { ARENA.with(|a| a.borrow_mut().clear()); Arena } }
impl Drop for Arena { fn drop(&mut self) { ARENA.with(|a| a.borrow_mut().clear()) } }
fn lend_bytes<'de>(b: &[u8]) -> &'de [u8] {
    let boxed: Box<[u8]> = b.into();
    let p: *const [u8] = &*boxed;  // the heap block stays put while the Vec grows
    ARENA.with(|a| a.borrow_mut().push(boxed));
    unsafe { &*p }
}
fn lend_str<'de>(s: &str) -> &'de str { unsafe { std::str::from_utf8_unchecked(lend_bytes(s.as_bytes())) } }

/// A `Deserializer` that forwards to another, turning every transient string or byte string
/// the inner one offers (`visit_str`) into a borrowed one (`visit_borrowed_str`), at any depth.
mod lent {
    use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor};
    use std::fmt;
    pub struct Lent<D>(pub D);
    struct V<T>(T);
    struct Seed<T>(T);
    struct Access<T>(T);

    macro_rules! forward {
        ($($method:ident)*) => { $(
            fn $method<W: Visitor<'de>>(self, v: W) -> Result<W::Value, Self::Error> { self.0.$method(V(v)) }
        )* };
    }
    impl<'de, D: Deserializer<'de>> Deserializer<'de> for Lent<D> {
        type Error = D::Error;
        forward!(deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32
                 deserialize_i64 deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32
                 deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char
                 deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
                 deserialize_option deserialize_unit deserialize_seq deserialize_map
                 deserialize_identifier deserialize_ignored_any);
        fn deserialize_unit_struct<W: Visitor<'de>>(self, name: &'static str, v: W) -> Result<W::Value, Self::Error> {
            self.0.deserialize_unit_struct(name, V(v)) }
        fn deserialize_newtype_struct<W: Visitor<'de>>(self, name: &'static str, v: W) -> Result<W::Value, Self::Error> {
            self.0.deserialize_newtype_struct(name, V(v)) }
        fn deserialize_tuple<W: Visitor<'de>>(self, len: usize, v: W) -> Result<W::Value, Self::Error> {
            self.0.deserialize_tuple(len, V(v)) }
        fn deserialize_tuple_struct<W: Visitor<'de>>(self, name: &'static str, len: usize, v: W) -> Result<W::Value, Self::Error> {
            self.0.deserialize_tuple_struct(name, len, V(v)) }
        fn deserialize_struct<W: Visitor<'de>>(self, name: &'static str, fields: &'static [&'static str], v: W) -> Result<W::Value, Self::Error> {
            self.0.deserialize_struct(name, fields, V(v)) }
        fn deserialize_enum<W: Visitor<'de>>(self, name: &'static str, variants: &'static [&'static str], v: W) -> Result<W::Value, Self::Error> {
            self.0.deserialize_enum(name, variants, V(v)) }
        fn is_human_readable(&self) -> bool { self.0.is_human_readable() }
    }

    macro_rules! visit {
        ($($method:ident: $t:ty)*) => { $(
            fn $method<E: de::Error>(self, x: $t) -> Result<Self::Value, E> { self.0.$method(x) }
        )* };
    }
    impl<'de, T: Visitor<'de>> Visitor<'de> for V<T> {
        type Value = T::Value;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result { self.0.expecting(f) }
        visit!(visit_bool: bool visit_i8: i8 visit_i16: i16 visit_i32: i32 visit_i64: i64 visit_i128: i128
               visit_u8: u8 visit_u16: u16 visit_u32: u32 visit_u64: u64 visit_u128: u128
               visit_f32: f32 visit_f64: f64 visit_char: char
               visit_borrowed_str: &'de str visit_borrowed_bytes: &'de [u8]);
        fn visit_str<E: de::Error>(self, s: &str) -> Result<T::Value, E> { self.0.visit_borrowed_str(super::lend_str(s)) }
        fn visit_string<E: de::Error>(self, s: String) -> Result<T::Value, E> { self.0.visit_borrowed_str(super::lend_str(&s)) }
        fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<T::Value, E> { self.0.visit_borrowed_bytes(super::lend_bytes(b)) }
        fn visit_byte_buf<E: de::Error>(self, b: Vec<u8>) -> Result<T::Value, E> { self.0.visit_borrowed_bytes(super::lend_bytes(&b)) }
        fn visit_none<E: de::Error>(self) -> Result<T::Value, E> { self.0.visit_none() }
        fn visit_unit<E: de::Error>(self) -> Result<T::Value, E> { self.0.visit_unit() }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<T::Value, D::Error> { self.0.visit_some(Lent(d)) }
        fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<T::Value, D::Error> { self.0.visit_newtype_struct(Lent(d)) }
        fn visit_seq<A: SeqAccess<'de>>(self, a: A) -> Result<T::Value, A::Error> { self.0.visit_seq(Access(a)) }
        fn visit_map<A: MapAccess<'de>>(self, a: A) -> Result<T::Value, A::Error> { self.0.visit_map(Access(a)) }
        fn visit_enum<A: EnumAccess<'de>>(self, a: A) -> Result<T::Value, A::Error> { self.0.visit_enum(Access(a)) }
    }

    impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for Seed<T> {
        type Value = T::Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T::Value, D::Error> { self.0.deserialize(Lent(d)) }
    }
    impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for Access<A> {
        type Error = A::Error;
        fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, A::Error> {
            self.0.next_element_seed(Seed(seed)) }
        fn size_hint(&self) -> Option<usize> { self.0.size_hint() }
    }
    impl<'de, A: MapAccess<'de>> MapAccess<'de> for Access<A> {
        type Error = A::Error;
        fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
            self.0.next_key_seed(Seed(seed)) }
        fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
            self.0.next_value_seed(Seed(seed)) }
        fn size_hint(&self) -> Option<usize> { self.0.size_hint() }
    }
    impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for Access<A> {
        type Error = A::Error;
        type Variant = Access<A::Variant>;
        fn variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<(T::Value, Self::Variant), A::Error> {
            self.0.variant_seed(Seed(seed)).map(|(v, rest)| (v, Access(rest))) }
    }
    impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for Access<A> {
        type Error = A::Error;
        fn unit_variant(self) -> Result<(), A::Error> { self.0.unit_variant() }
        fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value, A::Error> {
            self.0.newtype_variant_seed(Seed(seed)) }
        fn tuple_variant<W: Visitor<'de>>(self, len: usize, v: W) -> Result<W::Value, A::Error> {
            self.0.tuple_variant(len, V(v)) }
        fn struct_variant<W: Visitor<'de>>(self, fields: &'static [&'static str], v: W) -> Result<W::Value, A::Error> {
            self.0.struct_variant(fields, V(v)) }
    }
}
