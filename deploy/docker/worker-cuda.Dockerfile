# jetinfer CUDA worker: ONNX Runtime with its CUDA 13 / cuDNN 9 execution
# provider, laid out as `make deps-cuda` lays out .jetinfer/lib/cuda: the
# onnxruntime-node 1.30.0 core (built with the CUDA provider interface) with
# libonnxruntime_providers_shared.so and libonnxruntime_providers_cuda.so from
# com.github.asus4.onnxruntime.linux-x64-gpu beside it (the core loads them
# from its own directory). That is the combination `make test-device` proves
# on an H100 (see docs/operations.md). Run with --device cuda:0 on a node with
# the NVIDIA container toolkit (Kubernetes: nvidia.com/gpu resource).
#   docker build -f deploy/docker/worker-cuda.Dockerfile -t jetinfer/worker-cuda .
FROM node:22-bookworm-slim AS ort
ARG ORT_VERSION=1.30.0
ARG ORT_CUDA_NPM_VERSION=0.4.9
WORKDIR /ort
RUN npm pack --silent onnxruntime-node@${ORT_VERSION} \
                      com.github.asus4.onnxruntime.linux-x64-gpu@${ORT_CUDA_NPM_VERSION} && \
    mkdir -p lib && \
    tar -xzf onnxruntime-node-${ORT_VERSION}.tgz -C lib --strip-components=5 \
        package/bin/napi-v6/linux/x64/libonnxruntime.so.1 && \
    tar -xzf com.github.asus4.onnxruntime.linux-x64-gpu-${ORT_CUDA_NPM_VERSION}.tgz -C lib --strip-components=4 \
        package/Plugins/Linux/x64/libonnxruntime_providers_shared.so \
        package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so && \
    rm -f *.tgz && ls -l lib && test -s lib/libonnxruntime_providers_cuda.so

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/worker ./cmd/worker

FROM nvidia/cuda:13.0.1-cudnn-runtime-ubuntu24.04
RUN useradd --system --uid 10001 jetinfer
COPY --from=ort /ort/lib/ /opt/onnxruntime/lib/
COPY --from=build /out/worker /usr/local/bin/worker
USER 10001
EXPOSE 9090
ENV LD_LIBRARY_PATH=/opt/onnxruntime/lib:${LD_LIBRARY_PATH} \
    JETINFER_ORT_LIB=/opt/onnxruntime/lib/libonnxruntime.so.1 \
    JETINFER_DEVICE=cuda:0 \
    JETINFER_HTTP_ADDR=:9090 \
    JETINFER_MODELS=/models/sentiment \
    JETINFER_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/worker"]
