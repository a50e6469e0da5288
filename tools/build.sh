#!/usr/bin/env bash
# Builds the tools the real workflow needs, from pinned Go modules, into
# ${FLOE_TOOLS:-$HOME/.cache/floe-tools}/<key>/bin. <key> hashes everything under tools/ and the Go
# version, so any pin change builds anew; an existing complete build is a no-op.
#   tools/build.sh          build (prints timings and disk use)
#   tools/build.sh --dir    print the bin directory, build nothing
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly

# Versions: each Go build matches a PyPI pin in requirements.txt (see the README).
PULUMI_VERSION=v3.259.0                     # pulumi==3.259.0
KUBERNETES_PROVIDER_VERSION=4.25.0-alpha.1768448096 # pulumi-kubernetes==4.25.0a1768448096
KUBE_VERSION=v1.34.4
ESO_VERSION=v1.3.2 # the CRDs only (the proxy serves v1.3.2 and v0.16.2; the chart pin is 1.3.1)

key=$( (cd "$here" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' -o -name '*.sh' \) \
	-print0 | sort -z | xargs -0 sha256sum; go env GOVERSION) | sha256sum | cut -c1-16)
root=${FLOE_TOOLS:-$HOME/.cache/floe-tools}/$key
bin=$root/bin
if [[ ${1:-} == --dir ]]; then
	echo "$bin"
	exit 0
fi
if [[ -f $root/complete ]]; then
	echo "tools: up to date in $bin"
	exit 0
fi

rm -rf "$root"
mkdir -p "$root/bin.partial"
out=$root/bin.partial
start=$SECONDS
step() { # step NAME COMMAND...: run and time one build step
	local name=$1 t=$SECONDS
	shift
	echo "tools: building $name ..."
	"$@"
	printf 'tools: %-24s %4ds\n' "$name" $((SECONDS - t)) | tee -a "$root/timings.txt"
}

build_pulumi() {
	cd "$here/pulumi"
	go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
		-o "$out/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
}

build_python_host() {
	cd "$here/pulumi"
	go build -trimpath -ldflags "-s -w -X main.version=${PULUMI_VERSION#v}" -o "$out/pulumi-language-python" ./langhost
	# The SDK's own scripts: the program runner the host calls, and the dynamic-provider launcher.
	local sdk
	sdk=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
	install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$out/"
	install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$out/"
}

build_kubernetes_provider() {
	# The upstream main embeds files its go:generate step writes; run that same generate.go from the
	# module on its committed schema.json and mapping, in a scratch copy of our module.
	local work mod
	work=$(mktemp -d)
	cp "$here/kubernetes/"{go.mod,go.sum,main.go} "$work/"
	cd "$work"
	mod=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)/cmd/pulumi-resource-kubernetes
	cp "$mod/schema.json" "$mod/terraform-mapping.json" .
	VERSION=$KUBERNETES_PROVIDER_VERSION go run "$mod/generate.go"
	go build -trimpath \
		-ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$KUBERNETES_PROVIDER_VERSION" \
		-o "$out/pulumi-resource-kubernetes" .
	rm -rf "$work"
}

build_control_plane() {
	cd "$here/kube"
	local minor=${KUBE_VERSION#v1.}
	minor=${minor%%.*}
	local v flags=""
	for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
		flags+=" -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
	done
	go build -trimpath -ldflags "-s -w$flags" -o "$out/" \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
	go build -trimpath -ldflags "-s -w" -o "$out/etcd" ./etcd
}

build_kwok() {
	cd "$here/kwok"
	go build -trimpath -ldflags "-s -w" -o "$out/kwok" sigs.k8s.io/kwok/cmd/kwok
	# kwok runs only the stages it is given: kwok's own "fast" node and pod stages, from its module.
	local stages
	stages=$(go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
	mkdir -p "$out/kwok-stages"
	install -m 0644 "$stages/node/fast/node-initialize.yaml" \
		"$stages/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" "$stages/pod/fast/"pod-*.yaml "$out/kwok-stages/"
}

eso_crds() {
	# External Secrets Operator's own CRDs, so the API server validates the ESO objects we create.
	local dir
	dir=$(cd "$root" && go mod download -json "github.com/external-secrets/external-secrets@$ESO_VERSION" |
		sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
	mkdir -p "$out/eso-crds"
	install -m 0644 "$dir/config/crds/bases/external-secrets.io_"{clustersecretstores,secretstores,externalsecrets}.yaml \
		"$out/eso-crds/"
}

step pulumi build_pulumi
step pulumi-language-python build_python_host
step pulumi-resource-kubernetes build_kubernetes_provider
step control-plane build_control_plane
step kwok build_kwok
step eso-crds eso_crds

mv "$out" "$bin"
touch "$root/complete"
printf 'tools: built in %ds, %s of binaries in %s\n' $((SECONDS - start)) "$(du -sh "$bin" | cut -f1)" "$bin" |
	tee -a "$root/timings.txt"
