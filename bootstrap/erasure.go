package bootstrap

import (
	"log/slog"

	"hexapost/api"
	"hexapost/api/commandapi"
	"hexapost/core/command"
	"hexapost/ports"
)

// adminOf is the admin door of both servers: the query server's dead letters and the command
// server's erasures open with the same token.
func adminOf(cfg config) api.Admin {
	return api.Admin{
		Token:       cfg.AdminToken,
		HowToEnable: "set POSTS_ADMIN_TOKEN on the server and send it as Authorization: Bearer <token>",
	}
}

// newErasures is the command server's erase operations, audited under the admin token's name.
func newErasures(svc *command.Service, authors ports.AuthorPosts, bus ports.BusEraser, cfg config,
	log *slog.Logger) *commandapi.Erasures {
	return commandapi.NewErasures(command.NewEraser(svc, authors, bus, log), adminOf(cfg).Name(), log)
}
