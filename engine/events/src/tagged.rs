//! Fast decoding of internally tagged enums.
//!
//! `#[serde(tag = "...")]` makes serde buffer every object into an intermediate tree
//! before it can look at the tag, which doubled the cost of decoding an event. Our
//! encoder always writes the tag first, so the visitor generated here reads the first
//! key, and when it is the tag, deserializes the rest of the object straight into the
//! variant. Objects written with the tag elsewhere (by hand, by other tools) still
//! decode through a buffered slow path.

/// Implements `Deserialize` for an enum whose variants are newtypes of structs,
/// internally tagged by `$tag`.
macro_rules! tagged_deserialize {
    ($enum:ident, $tag:literal, { $($name:literal => $variant:ident($inner:ty)),* $(,)? }) => {
        impl<'de> serde::Deserialize<'de> for $enum {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                const VARIANTS: &[&str] = &[$($name),*];
                fn by_tag<'de, D: serde::Deserializer<'de>>(tag: &str, rest: D) -> Result<$enum, D::Error> {
                    match tag {
                        $($name => <$inner as serde::Deserialize>::deserialize(rest).map($enum::$variant),)*
                        other => Err(serde::de::Error::unknown_variant(other, VARIANTS)),
                    }
                }
                impl<'de> serde::de::Visitor<'de> for V {
                    type Value = $enum;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "an object with a `{}` tag", $tag)
                    }
                    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<$enum, A::Error> {
                        use serde::de::Error as _;
                        let first: Option<std::borrow::Cow<'de, str>> = map.next_key()?;
                        match first {
                            Some(k) if k == $tag => {
                                let tag: std::borrow::Cow<'de, str> = map.next_value()?;
                                by_tag(&tag, serde::de::value::MapAccessDeserializer::new(map))
                            }
                            Some(k) => {
                                let mut obj = serde_json::Map::new();
                                obj.insert(k.into_owned(), map.next_value()?);
                                while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
                                    obj.insert(k, v);
                                }
                                let tag = match obj.remove($tag) {
                                    Some(serde_json::Value::String(t)) => t,
                                    _ => return Err(A::Error::missing_field($tag)),
                                };
                                by_tag(&tag, serde_json::Value::Object(obj)).map_err(A::Error::custom)
                            }
                            None => Err(A::Error::missing_field($tag)),
                        }
                    }
                }
                d.deserialize_map(V)
            }
        }
    };
}

pub(crate) use tagged_deserialize;
