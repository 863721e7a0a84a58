//! Network allow-lists: the CIDR ranges an API key or a user may be used
//! from. An empty list allows every address.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::ValidationError;

/// Most ranges one list may hold.
pub const MAX_RANGES: usize = 50;

/// A validated allow-list, each range normalised (`10.1.2.3/8` is kept as
/// `10.0.0.0/8`; a bare address is its own /32 or /128).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedNetworks(Vec<IpNet>);

impl AllowedNetworks {
    /// Parses the ranges sent in `field`; the error names the field and the
    /// entry at fault.
    pub fn parse(field: &str, raw: &[String]) -> Result<Self, ValidationError> {
        if raw.len() > MAX_RANGES {
            return Err(ValidationError::new(
                field,
                format!("must hold at most {MAX_RANGES} ranges"),
            ));
        }
        let mut nets = Vec::with_capacity(raw.len());
        for (i, entry) in raw.iter().enumerate() {
            let text = entry.trim();
            let net = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ValidationError::new(
                        format!("{field}[{i}]"),
                        format!(
                            "{text:?} is not a CIDR range such as 203.0.113.0/24 or 2001:db8::/48"
                        ),
                    )
                })?;
            let net = net.trunc();
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
        Ok(Self(nets))
    }

    /// Whether `ip` may use the credential: always with an empty list, never
    /// without a known address otherwise.
    pub fn permits(&self, ip: Option<IpAddr>) -> bool {
        if self.0.is_empty() {
            return true;
        }
        let Some(ip) = ip.map(|i| i.to_canonical()) else {
            return false;
        };
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// Whether the list restricts anything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ranges as text, for responses.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// As stored: comma-separated, `None` for an empty list.
    pub fn to_stored(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.to_strings().join(","))
    }

    /// From storage; ranges that do not parse (none are written) are dropped
    /// with the list then refusing everything, so a damaged row fails closed.
    pub fn from_stored(stored: Option<&str>) -> Self {
        let Some(text) = stored.filter(|s| !s.is_empty()) else {
            return Self::default();
        };
        let nets: Vec<IpNet> = text.split(',').filter_map(|t| t.parse().ok()).collect();
        if nets.is_empty() {
            // Nothing parsed: allow nothing rather than everything.
            return Self(vec!["255.255.255.255/32".parse().expect("a literal range")]);
        }
        Self(nets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ranges: &[&str]) -> AllowedNetworks {
        let raw: Vec<String> = ranges.iter().map(|s| (*s).to_owned()).collect();
        AllowedNetworks::parse("allowed_cidrs", &raw).unwrap()
    }

    #[test]
    fn ranges_are_normalised_and_matched() {
        let l = list(&["10.1.2.3/8", "203.0.113.7", "2001:db8::/32", "10.0.0.0/8"]);
        assert_eq!(
            l.to_strings(),
            ["10.0.0.0/8", "203.0.113.7/32", "2001:db8::/32"]
        );
        assert!(l.permits(Some("10.200.0.1".parse().unwrap())));
        assert!(l.permits(Some("::ffff:10.9.9.9".parse().unwrap())));
        assert!(l.permits(Some("2001:db8:5::1".parse().unwrap())));
        assert!(!l.permits(Some("203.0.113.8".parse().unwrap())));
        assert!(!l.permits(None));
        assert!(AllowedNetworks::default().permits(None));
        assert_eq!(AllowedNetworks::from_stored(l.to_stored().as_deref()), l);
    }

    #[test]
    fn errors_name_the_entry() {
        let raw = vec!["10.0.0.0/8".to_owned(), "10.0.0.0/33".to_owned()];
        let e = AllowedNetworks::parse("allowed_cidrs", &raw).unwrap_err();
        assert_eq!(e.field, "allowed_cidrs[1]");
        let many = vec!["10.0.0.1".to_owned(); MAX_RANGES + 1];
        assert_eq!(
            AllowedNetworks::parse("allowed_cidrs", &many)
                .unwrap_err()
                .field,
            "allowed_cidrs"
        );
        assert!(
            !AllowedNetworks::from_stored(Some("junk")).permits(Some("1.2.3.4".parse().unwrap()))
        );
    }
}
