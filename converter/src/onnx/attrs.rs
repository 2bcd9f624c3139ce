//! Typed access to a node's attributes, with errors that name node, op and attribute.

use candle_core::Tensor;

use super::proto::{AttributeProto, NodeProto};
use super::{to_tensor, OnnxError};

/// The attributes of one node.
pub struct Attrs<'a> {
    node: &'a NodeProto,
}

impl<'a> Attrs<'a> {
    /// Attributes of `node`.
    pub fn new(node: &'a NodeProto) -> Self {
        Attrs { node }
    }

    fn find(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name() == name)
    }

    fn error(&self, attr: &str, reason: &str) -> OnnxError {
        OnnxError::Attribute {
            node: self.node.name().to_string(),
            op: self.node.op_type().to_string(),
            attr: attr.to_string(),
            reason: reason.to_string(),
        }
    }

    /// Whether the attribute is present.
    pub fn has(&self, name: &str) -> bool {
        self.find(name).is_some()
    }

    /// An integer attribute, or `default`.
    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.find(name).and_then(|a| a.i).unwrap_or(default)
    }

    /// A float attribute, or `default`.
    pub fn float(&self, name: &str, default: f32) -> f32 {
        self.find(name).and_then(|a| a.f).unwrap_or(default)
    }

    /// A list of integers, if present.
    pub fn ints(&self, name: &str) -> Option<&'a [i64]> {
        self.find(name).map(|a| a.ints.as_slice())
    }

    /// A list of floats, if present.
    pub fn floats(&self, name: &str) -> Option<&'a [f32]> {
        self.find(name).map(|a| a.floats.as_slice())
    }

    /// A string attribute, or `default`.
    pub fn string(&self, name: &str, default: &'a str) -> Result<&'a str, OnnxError> {
        match self.find(name).and_then(|a| a.s.as_deref()) {
            Some(bytes) => std::str::from_utf8(bytes).map_err(|_| self.error(name, "is not UTF-8")),
            None => Ok(default),
        }
    }

    /// A tensor attribute (the value of a `Constant` node).
    pub fn tensor(&self, name: &str) -> Result<Option<Tensor>, OnnxError> {
        self.find(name)
            .and_then(|a| a.t.as_ref())
            .map(to_tensor)
            .transpose()
    }

    /// The error for an attribute whose value cannot be used.
    pub fn invalid(&self, name: &str, reason: &str) -> OnnxError {
        self.error(name, reason)
    }
}
