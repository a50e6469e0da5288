//go:build tools

// Package tools pins the kwok controller (cmd/kwok) as a dependency of this module.
package tools

import _ "sigs.k8s.io/kwok/cmd/kwok"
