// Command pulumi-resource-kubernetes serves the Kubernetes provider. The upstream main embeds
// files that its `go generate` step writes; tools/build.sh writes the same two files from the
// module's committed schema.json and terraform-mapping.json before building this package.
package main

import (
	_ "embed"

	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/provider"
	"github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version"
)

//go:embed schema-embed.json
var pulumiSchema []byte

//go:embed terraform-mapping-embed.json
var terraformMapping []byte

func main() {
	provider.Serve("kubernetes", version.Version, pulumiSchema, terraformMapping)
}
