# jetinfer CUDA worker: ONNX Runtime GPU. The CUDA and TensorRT execution
# providers for ORT 1.29.0 (CUDA 13, cuDNN 9) come from the npm package
# com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 and the matching 1.29.0
# core from com.github.asus4.onnxruntime@0.4.9: core and providers must be
# the same version, and sit in one directory (the core loads the providers
# next to itself). Run with --device cuda:0 on a node with the NVIDIA
# container toolkit (Kubernetes: nvidia.com/gpu resource).
#   docker build -f deploy/docker/worker-cuda.Dockerfile -t jetinfer/worker-cuda .
FROM node:22-bookworm-slim AS ort
ARG ORT_NPM_VERSION=0.4.9
WORKDIR /ort
RUN npm pack --silent com.github.asus4.onnxruntime@${ORT_NPM_VERSION} \
                      com.github.asus4.onnxruntime.linux-x64-gpu@${ORT_NPM_VERSION} && \
    mkdir -p x lib && for t in *.tgz; do tar -xzf "$t" -C x; done && \
    find x -path '*linux-x64*' \( -name 'libonnxruntime.so*' -o -name 'libonnxruntime_providers_*.so' \) \
        -exec cp -L {} lib/ \; && \
    test -e lib/libonnxruntime_providers_cuda.so && \
    cd lib && for f in libonnxruntime.so.*.*; do [ -e "$f" ] && ln -sf "$f" libonnxruntime.so.1; done; ls -l

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
