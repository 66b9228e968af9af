package infer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/jetinfer/jetinfer/internal/tokenize"
)

// Kind is what a model does, and so the shape of its results.
type Kind string

// The kinds of model jetinfer runs.
const (
	// TextClassification scores a whole document against the model's labels.
	TextClassification Kind = "text-classification"
	// TokenClassification labels tokens and groups them into entities.
	TokenClassification Kind = "token-classification"
	// FeatureExtraction turns a document into one embedding vector.
	FeatureExtraction Kind = "feature-extraction"
	// ZeroShotClassification is an NLI classifier (labels include
	// entailment) that scores a text against candidate labels given per
	// job, each as the hypothesis of a (premise, hypothesis) pair.
	ZeroShotClassification Kind = "zero-shot-classification"
	// TextRanking is a cross-encoder: one relevance logit for a (query,
	// passage) pair; it answers rerank jobs.
	TextRanking Kind = "text-ranking"
)

// perRow reports whether the kind's graph answers one vector of logits per
// row ([batch, labels]) rather than one per token.
func (k Kind) perRow() bool {
	return k == TextClassification || k == ZeroShotClassification || k == TextRanking
}

// Info describes a loaded model, as GET /v1/models shows it.
type Info struct {
	// Task is the name jobs use to reach the model (jetinfer.json "task").
	Task string
	// Kind is the model's pipeline.
	Kind Kind
	// Labels are the classifier's labels by class index (config.json
	// id2label); nil for feature extraction.
	Labels []string
	// Version is the model version from jetinfer.json.
	Version string
	// MaxLength is the most tokens, special tokens included, in one row.
	MaxLength int
	// Dir is the model directory.
	Dir string
	// Description is jetinfer.json's free text about the model.
	Description string
	// RandomWeights is true for benchmark models whose weights are random:
	// their answers have the cost of real ones and no meaning.
	RandomWeights bool
	// Dimensions lists the sizes a feature-extraction model's embeddings
	// may be cut to (jetinfer.json "dimensions"): only a model trained for
	// it (Matryoshka representation learning) keeps its meaning when cut,
	// so a model that declares none is never cut.
	Dimensions []int
}

// manifest is jetinfer.json.
type manifest struct {
	Task            string `json:"task"`
	Kind            Kind   `json:"kind"`
	Version         string `json:"version"`
	MaxLength       int    `json:"max_length"`
	Stride          *int   `json:"stride"`
	Pooling         string `json:"pooling"`
	Normalize       *bool  `json:"normalize"`
	FunctionToApply string `json:"function_to_apply"`
	Description     string `json:"description"`
	RandomWeights   bool   `json:"random_weights"`
	// LongInput and MaxWindows are the model's defaults for long texts
	// (long.go).
	LongInput  string `json:"long_input"`
	MaxWindows int    `json:"max_windows"`
	Dimensions []int  `json:"dimensions"`
}

// hfConfig is the part of config.json jetinfer reads.
type hfConfig struct {
	ID2Label              map[string]string `json:"id2label"`
	ProblemType           string            `json:"problem_type"`
	MaxPositionEmbeddings int               `json:"max_position_embeddings"`
}

// scoreFunc is how classifier logits become scores.
type scoreFunc int

const (
	fnSoftmax scoreFunc = iota
	fnSigmoid
	fnNone
)

// Model is one loaded model directory with its ONNX Runtime session. Prepare
// and Run are safe for concurrent use; Close must not race with them.
type Model struct {
	info    Info
	tok     *tokenize.Tokenizer
	prefix  []int64 // special tokens before a sequence
	suffix  []int64 // special tokens after it
	pairTpl tokenize.PairTemplate
	nli     nliIDs // zero-shot classification's classes
	padID   int64
	unkID   int64 // the unknown token, -1 when the vocabulary has none
	window  int   // content tokens per row: MaxLength minus the special tokens
	stride  int   // tokens shared by consecutive windows (token classification)
	fn      scoreFunc
	pooling string // "mean" or "cls"
	norm    bool
	// The defaults for long texts, which a job's options can override
	// (long.go).
	longInput  string
	maxWindows int

	sess       *ort.DynamicAdvancedSession
	hasMask    bool
	hasTypes   bool
	inputOrder []string // names fed, in the order of the session's inputs
	outName    string
	outDim     int // labels (classifiers) or hidden size (embeddings); -1 when the graph leaves it open

	mu     sync.Mutex
	free   []*runBuf
	all    []*runBuf
	closed bool

	encPool sync.Pool // *tokenize.Encoding scratch for Prepare

	tagsOnce  sync.Once
	labelTags []labelTag
}

// LoadModel loads the model directory dir and opens an ONNX Runtime session
// for it. A broken directory fails with an error naming the file and what is
// wrong with it. Init must have been called.
func LoadModel(dir string, opts SessionOptions) (*Model, error) {
	if _, err := libPath(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	if _, _, err := parseDevice(opts.Device); err != nil {
		return nil, err
	}
	m := &Model{info: Info{Dir: dir}}
	if err := m.readManifest(dir); err != nil {
		return nil, err
	}
	if err := m.readConfig(dir); err != nil {
		return nil, err
	}
	if err := m.loadTokenizer(dir); err != nil {
		return nil, err
	}
	onnxPath := filepath.Join(dir, "model.onnx")
	if err := m.checkGraph(onnxPath); err != nil {
		return nil, err
	}
	so, err := newSessionOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", onnxPath, err)
	}
	defer so.Destroy()
	sess, err := ort.NewDynamicAdvancedSession(onnxPath, m.inputOrder, []string{m.outName}, so)
	if err != nil {
		return nil, fmt.Errorf("%s: open session: %w", onnxPath, err)
	}
	m.sess = sess
	m.encPool.New = func() any { return new(tokenize.Encoding) }
	return m, nil
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("%s: bad JSON: %w", path, err)
	}
	return nil
}

func (m *Model) readManifest(dir string) error {
	p := filepath.Join(dir, "jetinfer.json")
	var mf manifest
	if err := readJSON(p, &mf); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: missing (every model directory needs a jetinfer.json naming its task and kind)", p)
		}
		return err
	}
	kinds := []Kind{TextClassification, TokenClassification, FeatureExtraction, ZeroShotClassification, TextRanking}
	switch {
	case mf.Kind == "":
		return fmt.Errorf("%s: kind is missing (want one of %v)", p, kinds)
	case !slices.Contains(kinds, mf.Kind):
		return fmt.Errorf("%s: unknown kind %q (want one of %v)", p, mf.Kind, kinds)
	}
	if mf.Task == "" {
		mf.Task = filepath.Base(dir)
	}
	if mf.MaxLength < 0 {
		return fmt.Errorf("%s: max_length %d is negative", p, mf.MaxLength)
	}
	switch mf.Pooling {
	case "", "mean":
		m.pooling = "mean"
	case "cls":
		m.pooling = "cls"
	default:
		return fmt.Errorf("%s: unknown pooling %q (want mean or cls)", p, mf.Pooling)
	}
	m.norm = mf.Normalize == nil || *mf.Normalize
	switch mf.FunctionToApply {
	case "":
		m.fn = -1 // decided by config.json
	case "softmax":
		m.fn = fnSoftmax
	case "sigmoid":
		m.fn = fnSigmoid
	case "none":
		m.fn = fnNone
	default:
		return fmt.Errorf("%s: unknown function_to_apply %q (want softmax, sigmoid or none)", p, mf.FunctionToApply)
	}
	if mf.Stride != nil {
		if *mf.Stride < 0 {
			return fmt.Errorf("%s: stride %d is negative", p, *mf.Stride)
		}
		m.stride = *mf.Stride
	} else {
		m.stride = -1 // a quarter of the window, once the window is known
	}
	if err := m.readLong(p, mf); err != nil {
		return err
	}
	m.info.Task = mf.Task
	m.info.Kind = mf.Kind
	m.info.Version = mf.Version
	m.info.MaxLength = mf.MaxLength
	m.info.Description = mf.Description
	m.info.RandomWeights = mf.RandomWeights
	if len(mf.Dimensions) > 0 && mf.Kind != FeatureExtraction {
		return fmt.Errorf("%s: dimensions is only for feature-extraction models", p)
	}
	for _, d := range mf.Dimensions {
		if d <= 0 {
			return fmt.Errorf("%s: dimensions holds %d; each must be a positive embedding size", p, d)
		}
	}
	m.info.Dimensions = mf.Dimensions
	return nil
}

func (m *Model) readConfig(dir string) error {
	p := filepath.Join(dir, "config.json")
	var c hfConfig
	if err := readJSON(p, &c); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s: missing", p)
		}
		return err
	}
	if m.info.Kind != FeatureExtraction {
		if len(c.ID2Label) == 0 {
			return fmt.Errorf("%s: id2label is missing; a %s model needs its labels", p, m.info.Kind)
		}
		labels := make([]string, len(c.ID2Label))
		for k, v := range c.ID2Label {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(labels) {
				return fmt.Errorf("%s: id2label key %q is not a class index in 0..%d", p, k, len(labels)-1)
			}
			labels[i] = v
		}
		m.info.Labels = labels
		if err := m.nliLabels(p); err != nil {
			return err
		}
	}
	if m.fn == -1 {
		m.fn = fnSoftmax
		if c.ProblemType == "multi_label_classification" || len(m.info.Labels) == 1 {
			m.fn = fnSigmoid
		}
	}
	if m.info.MaxLength == 0 {
		m.info.MaxLength = 512
		if c.MaxPositionEmbeddings > 0 && c.MaxPositionEmbeddings < m.info.MaxLength {
			m.info.MaxLength = c.MaxPositionEmbeddings
		}
	} else if c.MaxPositionEmbeddings > 0 && m.info.MaxLength > c.MaxPositionEmbeddings {
		return fmt.Errorf("%s: jetinfer.json max_length %d exceeds max_position_embeddings %d", p, m.info.MaxLength, c.MaxPositionEmbeddings)
	}
	return nil
}

func (m *Model) loadTokenizer(dir string) error {
	p := filepath.Join(dir, "tokenizer.json")
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	tok, err := tokenize.Load(p)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	tpl := tok.Template()
	m.tok = tok
	m.unkID = findUnk(p, tok)
	m.prefix = tpl.Prefix
	m.pairTpl = tok.PairTemplate()
	m.suffix = tpl.Suffix
	m.padID = tok.PadID()
	m.window = m.info.MaxLength - len(m.prefix) - len(m.suffix)
	mf := filepath.Join(dir, "jetinfer.json")
	if m.window < 1 {
		return fmt.Errorf("%s: max_length %d leaves no room for text besides the %d special tokens", mf, m.info.MaxLength, len(m.prefix)+len(m.suffix))
	}
	if m.stride < 0 {
		m.stride = m.window / 4
	}
	if m.stride >= m.window {
		return fmt.Errorf("%s: stride %d must be smaller than max_length minus special tokens (%d)", mf, m.stride, m.window)
	}
	return nil
}

// findUnk returns the id of the tokenizer's unknown token (tokenizer.json
// model.unk_token), or -1. Token classification shows the original text for
// it, as transformers does.
func findUnk(path string, tok *tokenize.Tokenizer) int64 {
	var tj struct {
		Model struct {
			UnkToken *string `json:"unk_token"`
		} `json:"model"`
	}
	if readJSON(path, &tj) != nil || tj.Model.UnkToken == nil {
		return -1
	}
	for id := range int64(tok.VocabSize()) {
		if tok.Token(id) == *tj.Model.UnkToken {
			return id
		}
	}
	return -1
}

// checkGraph reads model.onnx's inputs and outputs and picks the output to
// read.
func (m *Model) checkGraph(p string) error {
	if _, err := os.Stat(p); err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	ins, outs, err := graphIO(p)
	if err != nil {
		return fmt.Errorf("%s: not a loadable ONNX model: %w", p, err)
	}
	hasIDs := false
	for _, in := range ins {
		switch in.name {
		case "input_ids":
			hasIDs = true
		case "attention_mask":
			m.hasMask = true
		case "token_type_ids":
			m.hasTypes = true
		default:
			return fmt.Errorf("%s: unexpected input %q (jetinfer feeds input_ids, attention_mask and token_type_ids)", p, in.name)
		}
		if !in.tensor || in.elem != onnxInt64 || len(in.dims) != 2 {
			return fmt.Errorf("%s: input %s; want an int64 tensor [batch, sequence]", p, in)
		}
		m.inputOrder = append(m.inputOrder, in.name)
	}
	if !hasIDs {
		return fmt.Errorf("%s: no input named input_ids (inputs: %s)", p, ioNames(ins))
	}

	var want []string
	rank := 3
	switch m.info.Kind {
	case TextClassification, ZeroShotClassification, TextRanking:
		want, rank = []string{"logits"}, 2
	case TokenClassification:
		want = []string{"logits"}
	case FeatureExtraction:
		want = []string{"last_hidden_state", "token_embeddings"}
	}
	out := -1
	for _, name := range want {
		if out = slices.IndexFunc(outs, func(o ioInfo) bool { return o.name == name }); out >= 0 {
			break
		}
	}
	if out < 0 { // any float output of the right rank
		out = slices.IndexFunc(outs, func(o ioInfo) bool { return o.tensor && o.elem == onnxFloat && len(o.dims) == rank })
	}
	if out < 0 {
		return fmt.Errorf("%s: no output %s of rank %d for a %s model (outputs: %s)", p, strings.Join(want, " or "), rank, m.info.Kind, ioNames(outs))
	}
	o := outs[out]
	if !o.tensor || o.elem != onnxFloat || len(o.dims) != rank {
		return fmt.Errorf("%s: output %s; want a float32 tensor of rank %d", p, o, rank)
	}
	m.outName = o.name
	m.outDim = int(o.dims[rank-1])
	if m.outDim <= 0 {
		m.outDim = -1
	}
	if m.info.Labels != nil && m.outDim > 0 && m.outDim != len(m.info.Labels) {
		return fmt.Errorf("%s: output %s has %d classes but config.json id2label names %d", p, o.name, m.outDim, len(m.info.Labels))
	}
	return nil
}

// graphIO returns the inputs and outputs of the model at p. It reads them
// from the file (milliseconds, where an ONNX Runtime session to ask would
// take seconds for a BERT-base); for a file it does not understand, or an
// unusual graph (weights listed as inputs, shapes left out), it asks ONNX
// Runtime through a session without optimisations.
func graphIO(p string) (ins, outs []ioInfo, err error) {
	if f, err := os.Open(p); err == nil {
		ins, outs, err := readGraphIO(f)
		f.Close()
		if err == nil && conventional(ins, outs) {
			return ins, outs, nil
		}
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, nil, fmt.Errorf("session options: %w", err)
	}
	defer so.Destroy()
	so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelDisableAll)
	so.SetIntraOpNumThreads(1)
	oins, oouts, err := ort.GetInputOutputInfoWithOptions(p, so)
	if err != nil {
		return nil, nil, err
	}
	conv := func(infos []ort.InputOutputInfo) []ioInfo {
		r := make([]ioInfo, len(infos))
		for i, in := range infos {
			// ORT's element types are ONNX's TensorProto.DataType values.
			r[i] = ioInfo{name: in.Name, tensor: in.OrtValueType == ort.ONNXTypeTensor, elem: int32(in.DataType), dims: []int64(in.Dimensions)}
		}
		return r
	}
	return conv(oins), conv(oouts), nil
}

// conventional reports whether a graph's declared inputs and outputs are
// what an optimum export has, so that reading them from the file is enough.
func conventional(ins, outs []ioInfo) bool {
	if len(ins) == 0 || len(outs) == 0 {
		return false
	}
	for _, in := range ins {
		switch in.name {
		case "input_ids", "attention_mask", "token_type_ids":
		default:
			return false // perhaps weights listed as inputs (IR < 4)
		}
	}
	for _, io := range append(ins[:len(ins):len(ins)], outs...) {
		if !io.tensor || len(io.dims) == 0 {
			return false
		}
	}
	return true
}

func ioNames(infos []ioInfo) string {
	s := make([]string, len(infos))
	for i := range infos {
		s[i] = infos[i].String()
	}
	sort.Strings(s)
	return strings.Join(s, "; ")
}

// Info describes the model.
func (m *Model) Info() Info {
	i := m.info
	i.Labels = append([]string(nil), m.info.Labels...)
	return i
}

// Close releases the session and the buffers. The model must not be used
// afterwards, nor while Close runs.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	for _, b := range m.all {
		b.destroy()
	}
	m.all, m.free = nil, nil
	if err := m.sess.Destroy(); err != nil {
		return fmt.Errorf("close model %s: %w", m.info.Task, err)
	}
	return nil
}
