//go:build tools

// Package main records, for go.sum, what the provider's own generate.go imports: build.sh runs it.
package main

import _ "github.com/pulumi/pulumi/pkg/v3/codegen/schema"
