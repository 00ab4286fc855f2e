package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/cassata/cassata/api/client"
)

// Create an event, read its status, and tell a 409 from other errors. (It
// needs a server, e.g. `cassata dev`, so it is compiled, not run.)
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := client.New("http://127.0.0.1:8085", client.WithAPIKey(os.Getenv("CASSATA_API_KEY")))

	ev, err := c.CreateEvent(ctx, client.CreateEventRequest{
		App:     "shop",
		ID:      "order-42-reminder", // optional: left out, the client makes one
		URL:     "https://example.com/hooks/reminder",
		Headers: map[string]string{"Content-Type": "application/json"},
		Body:    `{"order":42}`,
		Delay:   time.Hour, // or At: a time.Time
	})
	switch {
	case client.IsDuplicate(err):
		// The id is taken by an event with other content. (Sending the same
		// event again is no error: the answer is the stored one, Replayed.)
		log.Printf("order-42-reminder exists with other content: %v", err)
		return
	case err != nil:
		var ce *client.Error
		if errors.As(err, &ce) && ce.Field != "" {
			log.Fatalf("the server refused field %s: %s", ce.Field, ce.Message)
		}
		log.Fatal(err)
	}
	fmt.Println("scheduled", ev.ID, "for", ev.DueAt.Format(time.RFC3339))

	got, err := c.GetEvent(ctx, "shop", ev.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("status", got.Status, "after", got.Attempts, "attempts")
}

// Errors the API answers are *client.Error, also when wrapped.
func ExampleError() {
	err := fmt.Errorf("schedule reminder: %w", &client.Error{Status: 409, Code: "duplicate",
		Message: "an event with this app and id exists with different content"})

	var ce *client.Error
	if errors.As(err, &ce) {
		fmt.Println(ce.Status, ce.Code)
	}
	fmt.Println(client.IsConflict(err), client.IsDuplicate(err), client.IsNotFound(err))
	// Output:
	// 409 duplicate
	// true true false
}

// Iterate over every failed event of an application, page after page.
func ExampleClient_AllEvents() {
	c := client.New("http://127.0.0.1:8085", client.WithBearerToken(os.Getenv("CASSATA_ADMIN_TOKEN")))
	q := client.SearchQuery{EventFilter: client.EventFilter{App: "shop",
		Statuses: []client.Status{client.StatusFailed, client.StatusServiceUnavailable}}}
	for ev, err := range c.AllEvents(context.Background(), q) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(ev.ID, ev.Status, ev.LastStatusCode)
	}
}
