//go:build tools

// Package tools pins the Pulumi CLI (package cmd/pulumi) as a dependency of this module.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
