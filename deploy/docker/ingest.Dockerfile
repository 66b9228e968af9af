# jetinfer ingest: the HTTP API. Pure Go, no cgo: a static binary on a
# distroless base. Build from the repository root:
#   docker build -f deploy/docker/ingest.Dockerfile -t jetinfer/ingest .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ingest ./cmd/ingest && \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/jetinferctl ./cmd/jetinferctl

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ingest /out/jetinferctl /usr/local/bin/
USER nonroot:nonroot
EXPOSE 8080 9090
ENV JETINFER_ADDR=:8080 JETINFER_OPS_ADDR=:9090 JETINFER_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/ingest"]
