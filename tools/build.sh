#!/usr/bin/env bash
# Builds the tools the e2e suite and `make demo` need, from pinned Go modules and from the sources in
# ../shared/vendor (the two modules the Go proxy refuses), into
# ${FLOE_TOOLS:-$HOME/.cache/floe-tools}/<key>/bin. <key> hashes everything under tools/, the vendored
# sources and the Go version, so any pin change builds anew; an existing complete build is a no-op.
#   tools/build.sh          build (prints timings and disk use)
#   tools/build.sh --dir    print the bin directory, build nothing
#   tools/build.sh --cold   build as a new machine would: an empty GOMODCACHE, GOCACHE and tools dir
#                           (in a scratch dir that is removed afterwards), then install the result
#                           into the tools dir; prints time and disk use
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0

# Versions: each Go build matches a PyPI pin in requirements.txt (tests/test_versions.py checks it).
PULUMI_VERSION=v3.259.0                # pulumi==3.259.0 (CLI and the official Python language host)
KUBERNETES_PROVIDER_VERSION=4.25.0     # pulumi-kubernetes==4.25.0 (the proxy's one provider commit is its tag)
OPERATOR_VERSION=v0.11.5               # the Helm chart pin: secrets-operator v0.11.5
KUBE_VERSION=v1.34.4
RANDOM_VERSION=4.19.1                  # pulumi-random==4.19.1 (the provider plugin, from ../shared/vendor)
ESO_VERSION=v0.16.2                    # the ESO chart pin 0.16.2 (the proxy serves v0.16.2 whole, not v1.x)

vendor=${FLOE_VENDOR:-$(cd "$here/../.." && pwd)/shared/vendor}
langhost_src=$vendor/pulumi-language-python-${PULUMI_VERSION}
operator_src=$vendor/infisical-operator-${OPERATOR_VERSION}
random_src=$vendor/pulumi-random-v${RANDOM_VERSION}

die() { echo "tools: $*" >&2; exit 1; }

# Go must be at least the newest `go` line of every module built here: say so in the first second.
need_go() {
	local need=0.0 have v f
	for f in "$here"/*/go.mod "$langhost_src/go.mod" "$operator_src/go.mod" "$random_src/provider/go.mod"; do
		[[ -f $f ]] || continue
		v=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$f")
		[[ $(printf '%s\n%s\n' "$need" "$v" | sort -V | tail -1) == "$v" ]] && need=$v
	done
	command -v go >/dev/null || die "Go $need or newer is needed and no 'go' is on PATH"
	have=$(go env GOVERSION)
	have=${have#go}
	[[ $(printf '%s\n%s\n' "$need" "$have" | sort -V | head -1) == "$need" ]] ||
		die "Go $need or newer is needed (a go.mod asks for it), found Go $have ($(command -v go))"
}

key=$( (cd "$here" && find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' -o -name '*.sh' \) \
	-print0 | sort -z | xargs -0 sha256sum
	for d in "$langhost_src" "$operator_src" "$random_src"; do
		[[ -d $d ]] && (cd "$d" && find . -type f ! -name '*_test.go' -print0 | sort -z | xargs -0 sha256sum)
	done
	go env GOVERSION) | sha256sum | cut -c1-16)
tools_dir=${FLOE_TOOLS:-$HOME/.cache/floe-tools}
root=$tools_dir/$key
bin=$root/bin
case ${1:-} in
--dir)
	echo "$bin"
	exit 0
	;;
--cold)
	need_go
	scratch=$(mktemp -d "${TMPDIR:-/tmp}/floe-tools-cold.XXXXXX")
	export GOFLAGS="$GOFLAGS -modcacherw" # so that the scratch module cache can be removed
	trap 'rm -rf "$scratch"' EXIT
	echo "tools: cold build in $scratch (empty GOMODCACHE, GOCACHE and tools dir)"
	t0=$SECONDS
	GOMODCACHE=$scratch/gomodcache GOCACHE=$scratch/gocache FLOE_TOOLS=$scratch/tools "$0"
	took=$((SECONDS - t0))
	printf 'tools: cold build took %dm%02ds; disk: Go modules %s, Go build cache %s, tools %s\n' \
		$((took / 60)) $((took % 60)) "$(du -sh "$scratch/gomodcache" | cut -f1)" \
		"$(du -sh "$scratch/gocache" | cut -f1)" "$(du -sh "$scratch/tools" | cut -f1)" | tee "$scratch/summary"
	if [[ ! -f $root/complete ]]; then
		mkdir -p "$tools_dir"
		rm -rf "$root"
		mv "$scratch/tools/$key" "$root"
	fi
	cp "$scratch/summary" "$root/cold-build.txt"
	echo "tools: installed in $bin"
	exit 0
	;;
"") ;;
*) die "unknown option '$1' (use --dir or --cold)" ;;
esac
need_go
if [[ -f $root/complete ]]; then
	echo "tools: up to date in $bin"
	exit 0
fi
[[ -f $langhost_src/main.go && -f $operator_src/go.mod && -f $random_src/provider/go.mod ]] ||
	die "the vendored sources are missing: expected $langhost_src, $operator_src and $random_src (set FLOE_VENDOR)"

# A failed or interrupted build leaves nothing behind: a rerun never sees half a tools directory.
scratches=()
ticker=
cleanup() {
	local rc=$?
	[[ -n $ticker ]] && kill "$ticker" 2>/dev/null
	rm -rf "${scratches[@]}"
	if [[ ! -f $root/complete ]]; then
		rm -rf "$root"
		((rc == 0)) || echo "tools: build failed (exit $rc); removed the partial $root" >&2
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$root"
mkdir -p "$root/bin.partial"
out=$root/bin.partial
start=$SECONDS
step() { # step NAME COMMAND...: run and time one build step, saying every 30 s that it still runs
	local name=$1 t=$SECONDS
	shift
	echo "tools: building $name ..."
	(while sleep 30; do echo "tools: still building $name ($((SECONDS - t))s)"; done) &
	ticker=$!
	"$@"
	kill "$ticker" 2>/dev/null || true
	wait "$ticker" 2>/dev/null || true
	ticker=
	printf 'tools: %-26s %4ds\n' "$name" $((SECONDS - t)) | tee -a "$root/timings.txt"
}
scratch() { # scratch SRC: cd into a writable scratch copy of a source folder
	local d
	d=$(mktemp -d "${TMPDIR:-/tmp}/floe-tools-src.XXXXXX")
	scratches+=("$d")
	cp -r "$1/." "$d/"
	chmod -R u+w "$d"
	cd "$d"
}
moddir() { # moddir MODULE: the module's directory, downloaded first (go list -m prints nothing before)
	go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'
}

build_pulumi() {
	cd "$here/pulumi"
	go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
		-o "$out/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
}

build_python_host() {
	# The official host (sdk/python/cmd/pulumi-language-python at the same tag), from ../shared/vendor.
	scratch "$langhost_src"
	go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
		-o "$out/pulumi-language-python" .
	# The SDK's own scripts: the program runner the host calls, and the dynamic-provider launcher.
	local sdk
	sdk=$(moddir "github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION")
	[[ -n $sdk ]] || die "could not download github.com/pulumi/pulumi/sdk/v3@$PULUMI_VERSION"
	install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$out/"
	install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$out/"
}

build_kubernetes_provider() {
	# The upstream main embeds files its go:generate step writes; run that same generate.go from the
	# module on its committed schema.json and mapping, in a scratch copy of our module.
	local mod
	scratch "$here/kubernetes"
	mod=$(moddir github.com/pulumi/pulumi-kubernetes/provider/v4)
	[[ -n $mod ]] || die "could not download github.com/pulumi/pulumi-kubernetes/provider/v4"
	mod=$mod/cmd/pulumi-resource-kubernetes
	cp "$mod/schema.json" "$mod/terraform-mapping.json" .
	chmod u+w schema.json terraform-mapping.json
	VERSION=$KUBERNETES_PROVIDER_VERSION go run "$mod/generate.go"
	go build -trimpath \
		-ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$KUBERNETES_PROVIDER_VERSION" \
		-o "$out/pulumi-resource-kubernetes" .
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
	stages=$(moddir sigs.k8s.io/kwok)/kustomize/stage
	mkdir -p "$out/kwok-stages"
	install -m 0644 "$stages/node/fast/node-initialize.yaml" \
		"$stages/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" "$stages/pod/fast/"pod-*.yaml "$out/kwok-stages/"
}

build_operator() {
	# The Infisical Kubernetes operator at the chart's version, and the CRDs it watches (all of
	# config/crd/bases, as the chart installs them).
	scratch "$operator_src"
	go build -trimpath \
		-ldflags "-s -w -X github.com/Infisical/infisical/k8-operator/internal/util.Version=$OPERATOR_VERSION" \
		-o "$out/infisical-operator" ./cmd
	mkdir -p "$out/infisical-operator-crds"
	install -m 0644 config/crd/bases/*.yaml "$out/infisical-operator-crds/"
}

build_random_provider() {
	# pulumi-resource-random, from ../shared/vendor (the proxy refuses its module), as its Makefile
	# builds it: generate.go writes the versioned schema that main.go embeds, then the plugin builds
	# with the version stamped in. Its go.sum is upstream's: -mod=mod lets Go complete it.
	scratch "$random_src/provider"
	local flags=${GOFLAGS/-mod=readonly/-mod=mod}
	(cd cmd/pulumi-resource-random && VERSION=$RANDOM_VERSION GOFLAGS=$flags go run generate.go)
	GOFLAGS=$flags go build -trimpath \
		-ldflags "-s -w -X github.com/pulumi/pulumi-random/provider/v4/pkg/version.Version=$RANDOM_VERSION" \
		-o "$out/pulumi-resource-random" ./cmd/pulumi-resource-random
}

build_eso() {
	# External Secrets Operator's controller, with only the Infisical provider (and ESO's own fake
	# provider and password/uuid/fake generators) compiled in: v0.16.2 registers every provider in
	# two files and has no build tags, so a scratch copy rewrites them (287 modules become 82).
	local src
	src=$(cd "$root" && moddir "github.com/external-secrets/external-secrets@$ESO_VERSION")
	[[ -n $src ]] || die "could not download github.com/external-secrets/external-secrets@$ESO_VERSION"
	scratch "$src"
	printf 'package register\n\nimport (\n\t_ "%s/fake"\n\t_ "%s/infisical"\n)\n' \
		github.com/external-secrets/external-secrets/pkg/provider{,} >pkg/provider/register/register.go
	printf 'package register\n\nimport (\n\t_ "%s/fake"\n\t_ "%s/password"\n\t_ "%s/uuid"\n)\n' \
		github.com/external-secrets/external-secrets/pkg/generator{,,} >pkg/generator/register/register.go
	go build -trimpath -ldflags "-s -w" -o "$out/external-secrets" .
	# Its chart as the release packages it (hack/helm.generate.sh): the chart of the same tag, at the
	# tag's version, with every CRD of config/crds/bases as a template behind installCRDs (and the
	# chart's crds.create<Kind> for the optional kinds). Its one dependency (bitwarden-sdk-server,
	# off by default, from an OCI registry) is dropped.
	local chart=$out/eso-chart/external-secrets crd kind flag
	mkdir -p "$out/eso-chart"
	cp -r deploy/charts/external-secrets "$chart"
	rm -f "$chart/Chart.lock"
	sed -i -e "s/^version: .*/version: \"${ESO_VERSION#v}\"/" -e "s/^appVersion: .*/appVersion: \"$ESO_VERSION\"/" \
		-e '/^dependencies:/,$d' "$chart/Chart.yaml"
	for crd in config/crds/bases/*.yaml; do
		[[ $(basename "$crd") == kustomization.yaml ]] && continue
		kind=$(sed -n 's/^    kind: //p' "$crd" | head -1)
		case $kind in
		Cluster* | PushSecret) flag="and (.Values.installCRDs) (.Values.crds.create$kind)" ;;
		*) flag=".Values.installCRDs" ;;
		esac
		{ echo "{{- if $flag }}"; cat "$crd"; echo "{{- end }}"; } >"$chart/templates/crds/$(basename "$crd")"
	done
}

step pulumi build_pulumi
step pulumi-language-python build_python_host
step pulumi-resource-kubernetes build_kubernetes_provider
step control-plane build_control_plane
step kwok build_kwok
step infisical-operator build_operator
step pulumi-resource-random build_random_provider
step external-secrets build_eso

mv "$out" "$bin"
touch "$root/complete"
printf 'tools: built in %ds, %s of binaries in %s\n' $((SECONDS - start)) "$(du -sh "$bin" | cut -f1)" "$bin" |
	tee -a "$root/timings.txt"
