# The few nixpkgs.lib functions the flake uses, written from their documented behaviour.
rec {
  genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
  optionalAttrs = cond: attrs: if cond then attrs else { };
  optionals = cond: list: if cond then list else [ ];
  importJSON = path: builtins.fromJSON (builtins.readFile path);
  makeBinPath = pkgs: builtins.concatStringsSep ":" (map (p: "${p}/bin") pkgs);
  licenses = { mit = { spdxId = "MIT"; }; };
}
