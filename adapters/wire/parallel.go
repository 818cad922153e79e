package wire

import (
	"context"
	"sync"

	"hexapost/ports"
)

// PostsInParallel is how many posts' changes of one batch the bus adapters apply at once; each
// post's changes keep their order.
const PostsInParallel = 16

// InParallel calls handle for every item, at most limit at a time, and returns when all are
// done. Items with the same key are handled one after the other, in their order; items with
// different keys may run at the same time. The bus adapters use it to apply a batch of
// changes to several posts at once while each post's changes keep their order.
func InParallel[T any](items []T, key func(T) string, limit int, handle func(T)) {
	if limit <= 1 || len(items) <= 1 {
		for _, it := range items {
			handle(it)
		}
		return
	}
	var order []string
	groups := map[string][]T{}
	for _, it := range items {
		k := key(it)
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], it)
	}
	slots := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for _, k := range order {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			for _, it := range groups[k] {
				handle(it)
			}
		})
	}
	wg.Wait()
}

// Following returns, for each item, the index of the last item after it with the same key, or
// -1 when there is none. Items for which key reports false (those the handler will not be
// given) neither have nor are a following item. The bus adapters use it to tell the handler,
// with ports.WithFollowing, which later change of the same post it will be given in the batch.
func Following[T any](items []T, key func(T) (string, bool)) []int {
	last := map[string]int{}
	for i, it := range items {
		if k, ok := key(it); ok {
			last[k] = i
		}
	}
	out := make([]int, len(items))
	for i, it := range items {
		out[i] = -1
		if k, ok := key(it); ok && last[k] > i {
			out[i] = last[k]
		}
	}
	return out
}

// Followed returns ctx telling the handler of later, the change of the same post it will be
// given after the one in hand (ports.WithFollowing), or ctx itself when there is none.
func Followed(ctx context.Context, later *ports.Change) context.Context {
	if later == nil {
		return ctx
	}
	return ports.WithFollowing(ctx, *later)
}
