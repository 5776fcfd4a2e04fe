//! Fleet certificates: a CA and the certificates it signs for controller, agents and operators.
