# For those who build with Docker; `make image` builds the same image
# without it (tools/image). TestDockerfileMatchesImage keeps the two alike.
# The builder is pinned to the Go the Makefile uses (GOTOOLCHAIN=go1.27.3):
# go1.26's standard library has vulnerabilities our code reaches.
FROM golang:1.27.3-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# VERSION and REVISION (make image passes them); a plain `docker build .`
# takes them from the checkout (.git is in the build context for this).
ARG VERSION
ARG REVISION
ARG TARGETOS=linux
ARG TARGETARCH
RUN version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo devel)} && \
    revision=${REVISION:-$(git rev-parse HEAD 2>/dev/null)} && \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath \
      -ldflags "-s -w -X github.com/smartrent-bridge/bridge/internal/version.stamped=${version} -X github.com/smartrent-bridge/bridge/internal/version.stampedRevision=${revision}" \
      -o /out/ ./cmd/bridge ./cmd/webhook-ingress ./cmd/smartrentctl

FROM scratch
COPY --from=build /out/ /usr/local/bin/
ENV PATH=/usr/local/bin
USER 65532:65532
EXPOSE 8080 9090 9091
ENTRYPOINT ["/usr/local/bin/bridge"]
