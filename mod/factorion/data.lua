require("prototypes.tools")
require("prototypes.shortcut")
