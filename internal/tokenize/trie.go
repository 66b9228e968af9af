package tokenize

import (
	"slices"
)

// trie is a read-only byte trie over a vocabulary, answering "which is the
// longest vocabulary entry that s starts with" in one walk over s, without
// hashing. The root's children are a direct table; a node's children are a
// sorted run of edges.
type trie struct {
	root  [256]int32 // node of each first byte, -1 when none
	nodes []trieNode
	edges []trieEdge
}

type trieNode struct {
	edge, n uint32 // children: edges[edge : edge+n], sorted by byte
	val     int32  // token id ending here, -1 when none
}

type trieEdge struct {
	b     byte
	child uint32
}

// newTrie builds a trie of the non-empty keys of vocab.
func newTrie(vocab map[string]int32) *trie {
	keys := make([]string, 0, len(vocab))
	for k := range vocab {
		if k != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	t := &trie{}
	for i := range t.root {
		t.root[i] = -1
	}
	// Group the sorted keys by first byte; build each group's subtree.
	for i := 0; i < len(keys); {
		j := i
		for j < len(keys) && keys[j][0] == keys[i][0] {
			j++
		}
		t.root[keys[i][0]] = int32(t.build(keys[i:j], 1, vocab))
		i = j
	}
	return t
}

// build adds the node for the keys (sorted, sharing their first depth bytes)
// and returns its index.
func (t *trie) build(keys []string, depth int, vocab map[string]int32) uint32 {
	idx := uint32(len(t.nodes))
	t.nodes = append(t.nodes, trieNode{val: -1})
	if len(keys[0]) == depth {
		t.nodes[idx].val = vocab[keys[0]]
		keys = keys[1:]
	}
	// Reserve this node's edges contiguously, then build the children.
	type group struct {
		b    byte
		keys []string
	}
	var groups []group
	for i := 0; i < len(keys); {
		j := i
		for j < len(keys) && keys[j][depth] == keys[i][depth] {
			j++
		}
		groups = append(groups, group{keys[i][depth], keys[i:j]})
		i = j
	}
	first := uint32(len(t.edges))
	t.nodes[idx].edge, t.nodes[idx].n = first, uint32(len(groups))
	for _, g := range groups {
		t.edges = append(t.edges, trieEdge{b: g.b})
	}
	for k, g := range groups {
		child := t.build(g.keys, depth+1, vocab)
		t.edges[first+uint32(k)].child = child
	}
	return idx
}

// longest returns the id and byte length of the longest key that s starts
// with, or n == 0 when none does.
func (t *trie) longest(s string) (id int32, n int) {
	if len(s) == 0 {
		return 0, 0
	}
	r := t.root[s[0]]
	if r < 0 {
		return 0, 0
	}
	node := &t.nodes[r]
	if node.val >= 0 {
		id, n = node.val, 1
	}
	for i := 1; i < len(s) && node.n > 0; i++ {
		c := s[i]
		edges := t.edges[node.edge : node.edge+node.n]
		next := -1
		if len(edges) <= 8 {
			for k := range edges {
				if edges[k].b == c {
					next = int(edges[k].child)
					break
				}
			}
		} else {
			lo, hi := 0, len(edges)
			for lo < hi {
				m := int(uint(lo+hi) >> 1)
				if edges[m].b < c {
					lo = m + 1
				} else {
					hi = m
				}
			}
			if lo < len(edges) && edges[lo].b == c {
				next = int(edges[lo].child)
			}
		}
		if next < 0 {
			break
		}
		node = &t.nodes[next]
		if node.val >= 0 {
			id, n = node.val, i+1
		}
	}
	return id, n
}
