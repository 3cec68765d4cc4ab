package config

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// KnownQueues are the queues tidemark's jobs are put on.
func KnownQueues() []string { return slices.Sorted(maps.Keys(DefaultQueues())) }

// queuesFromEnv sets c.Queues and c.APIOnly from TIDEMARK_QUEUES and
// API_ONLY. TIDEMARK_QUEUES names exactly the queues this process works,
// so that a deployment can be given the partner calls and another the
// statistics, each scaled on its own; unset, every queue with its default
// workers. A process working no queue must say so (API_ONLY=true): an empty
// set written by mistake would otherwise start a worker that works nothing.
func (c *Config) queuesFromEnv(getenv func(string) string) error {
	apiOnly := false
	if v := strings.TrimSpace(getenv("API_ONLY")); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("API_ONLY: want true or false, got %q", v)
		}
		apiOnly = b
	}
	raw, set := getenv("TIDEMARK_QUEUES"), getenv("TIDEMARK_QUEUES") != ""
	switch {
	case apiOnly && set:
		return fmt.Errorf("TIDEMARK_QUEUES: an API-only process (API_ONLY=true) works no queue; unset one of them, got %q", raw)
	case apiOnly:
		c.Queues, c.APIOnly = map[string]int{}, true
		return nil
	case !set:
		return nil // the defaults
	}
	q, err := ParseQueues(raw)
	if err != nil {
		return fmt.Errorf("TIDEMARK_QUEUES: %w", err)
	}
	c.Queues = q
	return nil
}

// ParseQueues parses "name=workers,name=workers" of the known queues, each
// named once.
func ParseQueues(s string) (map[string]int, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("no queue named (a process that works none is API_ONLY=true), got %q", s)
	}
	known := DefaultQueues()
	out := map[string]int{}
	for _, part := range strings.Split(s, ",") {
		name, n, ok := strings.Cut(strings.TrimSpace(part), "=")
		name = strings.TrimSpace(name)
		workers, err := strconv.Atoi(strings.TrimSpace(n))
		switch {
		case !ok || name == "" || err != nil || workers < 1 || workers > 10000:
			return nil, fmt.Errorf("want name=workers (1..10000) separated by commas, got %q", part)
		case known[name] == 0:
			return nil, fmt.Errorf("unknown queue %q; the queues are %s", name, strings.Join(KnownQueues(), ", "))
		case out[name] != 0:
			return nil, fmt.Errorf("queue %q named twice", name)
		}
		out[name] = workers
	}
	return out, nil
}
