# jetinfer CPU worker: Go (cgo, for onnxruntime_go) plus the ONNX Runtime
# 1.30.0 CPU library taken from the onnxruntime-node npm tarball, the same
# source `make deps` uses. Models are not baked in: mount them (read-only)
# and point --models / JETINFER_MODELS at their directories.
#   docker build -f deploy/docker/worker-cpu.Dockerfile -t jetinfer/worker-cpu .
FROM node:22-bookworm-slim AS ort
ARG ORT_VERSION=1.30.0
WORKDIR /ort
RUN npm pack --silent onnxruntime-node@${ORT_VERSION} && \
    tar -xzf onnxruntime-node-${ORT_VERSION}.tgz package/bin/napi-v6/linux/x64/libonnxruntime.so.1 && \
    mv package/bin/napi-v6/linux/x64/libonnxruntime.so.1 /ort/libonnxruntime.so.1

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/worker ./cmd/worker

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates libgomp1 && \
    rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 jetinfer
COPY --from=ort /ort/libonnxruntime.so.1 /opt/onnxruntime/lib/libonnxruntime.so.1
COPY --from=build /out/worker /usr/local/bin/worker
USER 10001
EXPOSE 9090
ENV JETINFER_ORT_LIB=/opt/onnxruntime/lib/libonnxruntime.so.1 \
    JETINFER_DEVICE=cpu \
    JETINFER_HTTP_ADDR=:9090 \
    JETINFER_MODELS=/models/sentiment \
    JETINFER_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/worker"]
