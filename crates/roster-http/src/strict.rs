//! Request bodies whose objects are objects. serde's derived `Deserialize` for a struct also
//! accepts a JSON *array* and fills the fields by position, so `[[{"user_name": …}]]` used to
//! create Huawei users like `{"users": [{"user_name": …}]}`, and `["Arr", null, "0"]` a
//! Feishu department: what such a body means depends on the order the fields are declared
//! in, and a client that sends a list by mistake silently writes data. Every dialect's
//! requests are JSON objects, so an array where a struct is expected is refused, and each
//! front door answers that in its own envelope.
//!
//! `Strict` wraps a deserializer and everything it hands on (elements, map values, options,
//! enum contents), so the rule holds at every depth; it changes nothing else. It wraps the
//! streaming `serde_json` deserializer rather than a parsed `serde_json::Value`, because a
//! `Value` keeps the last of two equal keys, and a key sent twice must stay refused.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, MapAccess, SeqAccess, VariantAccess, Visitor,
};
use serde::Deserialize;

/// Parses a JSON body as `T`, refusing a JSON array wherever a struct is expected and
/// anything but white space after the value (as `serde_json::from_slice` does).
///
/// # Errors
///
/// `serde_json`'s error for a malformed body, a wrong type, a key sent twice, or an array
/// where an object belongs.
pub fn from_slice<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Deserializes a `T` from `de`, refusing a JSON array wherever a struct is expected.
///
/// # Errors
///
/// The deserializer's own errors, and an "invalid type" error for an array where an object
/// belongs.
pub fn deserialize<'de, T, D>(de: D) -> Result<T, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    T::deserialize(Strict(de))
}

/// A deserializer whose structs must come from objects.
struct Strict<D>(D);

/// A visitor handed on through `Strict`: it wraps whatever it is given to deserialize
/// further, and when it stands for a struct (`object_only`) it refuses a sequence.
struct Wrap<V> {
    inner: V,
    object_only: bool,
}

impl<V> Wrap<V> {
    fn any(inner: V) -> Self {
        Self {
            inner,
            object_only: false,
        }
    }

    fn object(inner: V) -> Self {
        Self {
            inner,
            object_only: true,
        }
    }
}

/// The expectation named when an array stands where an object must.
struct AnObject;

impl de::Expected for AnObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
}

/// Forwards `deserialize_*` methods that take only a visitor.
macro_rules! forward {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(Wrap::any(visitor))
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward! {
        deserialize_any deserialize_bool
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_f32 deserialize_f64 deserialize_char deserialize_str deserialize_string
        deserialize_bytes deserialize_byte_buf deserialize_option deserialize_unit
        deserialize_seq deserialize_map deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit_struct(name, Wrap::any(visitor))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_newtype_struct(name, Wrap::any(visitor))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple(len, Wrap::any(visitor))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_tuple_struct(name, len, Wrap::any(visitor))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_struct(name, fields, Wrap::object(visitor))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, Wrap::any(visitor))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

/// Forwards `visit_*` methods of plain values unchanged.
macro_rules! visit {
    ($($method:ident($ty:ty))*) => {$(
        fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
            self.inner.$method(v)
        }
    )*};
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Wrap<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.expecting(f)
    }

    visit! {
        visit_bool(bool)
        visit_i8(i8) visit_i16(i16) visit_i32(i32) visit_i64(i64) visit_i128(i128)
        visit_u8(u8) visit_u16(u16) visit_u32(u32) visit_u64(u64) visit_u128(u128)
        visit_f32(f32) visit_f64(f64) visit_char(char)
        visit_str(&str) visit_borrowed_str(&'de str) visit_string(String)
        visit_bytes(&[u8]) visit_borrowed_bytes(&'de [u8]) visit_byte_buf(Vec<u8>)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(Strict(d))
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_newtype_struct(Strict(d))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        if self.object_only {
            return Err(de::Error::invalid_type(de::Unexpected::Seq, &AnObject));
        }
        self.inner.visit_seq(StrictSeq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(StrictMap(map))
    }

    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(StrictEnum(data))
    }
}

/// A seed whose deserializer is wrapped, for the elements, keys and values handed on.
struct StrictSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for StrictSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Strict(d))
    }
}

struct StrictSeq<A>(A);

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for StrictSeq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0.next_element_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct StrictMap<A>(A);

impl<'de, A: MapAccess<'de>> MapAccess<'de> for StrictMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        self.0.next_key_seed(StrictSeed(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.0.next_value_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

struct StrictEnum<A>(A);

impl<'de, A: EnumAccess<'de>> EnumAccess<'de> for StrictEnum<A> {
    type Error = A::Error;
    type Variant = StrictVariant<A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), Self::Error> {
        self.0
            .variant_seed(StrictSeed(seed))
            .map(|(value, variant)| (value, StrictVariant(variant)))
    }
}

struct StrictVariant<A>(A);

impl<'de, A: VariantAccess<'de>> VariantAccess<'de> for StrictVariant<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.0.newtype_variant_seed(StrictSeed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.tuple_variant(len, Wrap::any(visitor))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.struct_variant(fields, Wrap::object(visitor))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Inner {
        a: Option<String>,
        b: Option<bool>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        items: Option<Vec<Inner>>,
        one: Option<Inner>,
        tags: Option<Vec<String>>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    enum Shape {
        Unit,
        Point { x: i64 },
    }

    fn parse<T: serde::de::DeserializeOwned>(s: &str) -> Result<T, serde_json::Error> {
        let mut de = serde_json::Deserializer::from_str(s);
        let value = deserialize(&mut de)?;
        de.end()?;
        Ok(value)
    }

    #[test]
    fn objects_parse_as_before() {
        let o: Outer = parse(
            r#"{"items":[{"a":"x","b":true},{}],"one":{"a":null},"tags":["t"],"extra":[1,[2]]}"#,
        )
        .unwrap();
        assert_eq!(
            o,
            Outer {
                items: Some(vec![
                    Inner {
                        a: Some("x".into()),
                        b: Some(true)
                    },
                    Inner { a: None, b: None }
                ]),
                one: Some(Inner { a: None, b: None }),
                tags: Some(vec!["t".into()]),
            }
        );
        assert_eq!(parse::<Shape>(r#""Unit""#).unwrap(), Shape::Unit);
        assert_eq!(
            parse::<Shape>(r#"{"Point":{"x":1}}"#).unwrap(),
            Shape::Point { x: 1 }
        );
        // serde_json alone takes every one of these arrays as a positional struct.
        assert!(serde_json::from_str::<Outer>(r#"[[["x",true]],null,null]"#).is_ok());
    }

    #[test]
    fn an_array_where_a_struct_is_expected_is_refused_at_any_depth() {
        for body in [
            r#"[[{"a":"x"}],null,null]"#,
            r"[]",
            r#"{"items":[["x",true]]}"#,
            r#"{"one":["x",true]}"#,
            r#"{"items":[{"a":"x"},["y"]]}"#,
        ] {
            let err = parse::<Outer>(body).unwrap_err();
            assert!(
                err.to_string().contains("expected a JSON object"),
                "{body}: {err}"
            );
        }
        assert!(parse::<Shape>(r#"{"Point":[1]}"#).is_err());
    }

    #[test]
    fn other_errors_are_serde_json_s_own() {
        let dup = parse::<Inner>(r#"{"a":"x","a":"y"}"#).unwrap_err();
        assert!(dup.to_string().contains("duplicate field"), "{dup}");
        let ty = parse::<Inner>(r#"{"b":"yes"}"#).unwrap_err();
        assert!(ty.to_string().contains("invalid type"), "{ty}");
        assert!(parse::<Inner>(r#"{"a":"x"} trailing"#).is_err());
        assert!(parse::<Outer>(r#"{"tags":"t"}"#).is_err());
    }
}
