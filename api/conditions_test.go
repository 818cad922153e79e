package api_test

import (
	"errors"
	"net/http"
	"reflect"
	"testing"

	"github.com/danielgtaylor/huma/v2"

	"hexapost/api"
)

func TestParseEntityTags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give         string
		wantTags     api.EntityTags
		wantVersions []int64
		wantErr      error
	}{
		{give: `"3"`, wantTags: api.EntityTags{Tags: []api.EntityTag{{Opaque: "3"}}}, wantVersions: []int64{3}},
		{give: ` "3" `, wantTags: api.EntityTags{Tags: []api.EntityTag{{Opaque: "3"}}}, wantVersions: []int64{3}},
		{give: `*`, wantTags: api.EntityTags{Any: true}},
		{give: `W/"3"`, wantTags: api.EntityTags{Tags: []api.EntityTag{{Weak: true, Opaque: "3"}}}},
		{
			give:         `"3", W/"4" ,"3",,"x"`,
			wantTags:     api.EntityTags{Tags: []api.EntityTag{{Opaque: "3"}, {Weak: true, Opaque: "4"}, {Opaque: "3"}, {Opaque: "x"}}},
			wantVersions: []int64{3},
		},
		{give: `"3","5"`, wantTags: api.EntityTags{Tags: []api.EntityTag{{Opaque: "3"}, {Opaque: "5"}}}, wantVersions: []int64{3, 5}},
		// Tags this API never sends: valid, but they name no version.
		{give: `"03"`, wantTags: api.EntityTags{Tags: []api.EntityTag{{Opaque: "03"}}}},
		{give: `"0"`, wantTags: api.EntityTags{Tags: []api.EntityTag{{Opaque: "0"}}}},
		{give: `""`, wantTags: api.EntityTags{Tags: []api.EntityTag{{Opaque: ""}}}},
		{give: `"99999999999999999999"`, wantTags: api.EntityTags{Tags: []api.EntityTag{{Opaque: "99999999999999999999"}}}},
		{give: `3`, wantErr: api.ErrEntityTags},
		{give: `banana`, wantErr: api.ErrEntityTags},
		{give: `"3`, wantErr: api.ErrEntityTags},
		{give: `"3" "4"`, wantErr: api.ErrEntityTags},
		{give: `"a b"`, wantErr: api.ErrEntityTags},
		{give: `w/"3"`, wantErr: api.ErrEntityTags},
		{give: `*, "3"`, wantErr: api.ErrEntityTags},
		{give: `,`, wantErr: api.ErrEntityTags},
	}
	for _, tt := range tests {
		t.Run(tt.give, func(t *testing.T) {
			t.Parallel()

			got, err := api.ParseEntityTags(tt.give)

			if !errors.Is(err, tt.wantErr) || !reflect.DeepEqual(got, tt.wantTags) ||
				!reflect.DeepEqual(got.Versions(), tt.wantVersions) {
				t.Errorf("ParseEntityTags(%q) = %+v (versions %v), %v; want %+v (versions %v), %v",
					tt.give, got, got.Versions(), err, tt.wantTags, tt.wantVersions, tt.wantErr)
			}
		})
	}
}

// TestMatchesWeakly holds If-None-Match to the weak comparison: W/"3" and "3" both match
// version 3, * matches any version, and no field matches none.
func TestMatchesWeakly(t *testing.T) {
	t.Parallel()
	tests := []struct {
		give        string
		giveVersion int64
		want        bool
	}{
		{`"3"`, 3, true},
		{`W/"3"`, 3, true},
		{`"1", W/"3"`, 3, true},
		{`*`, 3, true},
		{`"2"`, 3, false},
		{`W/"03"`, 3, false},
		{`"x"`, 3, false},
	}
	for _, tt := range tests {
		tags, err := api.ParseEntityTags(tt.give)
		if err != nil {
			t.Fatal(err)
		}
		if got := tags.MatchesWeakly(tt.giveVersion); got != tt.want {
			t.Errorf("%s matches version %d: %v, want %v", tt.give, tt.giveVersion, got, tt.want)
		}
	}
	if (api.EntityTags{}).MatchesWeakly(1) {
		t.Error("no If-None-Match matches version 1, want no match")
	}
}

func TestNotModified(t *testing.T) {
	t.Parallel()
	err := api.NotModified(4)
	var (
		status  huma.StatusError
		headers huma.HeadersError
	)
	if !errors.As(err, &status) || status.GetStatus() != http.StatusNotModified ||
		!errors.As(err, &headers) || headers.GetHeaders().Get("ETag") != `"4"` {
		t.Errorf("NotModified(4) = %v, want 304 with ETag \"4\"", err)
	}
}
