# A layered image: `docker load < result`, then
#   docker run --rm -v demod-cache:/cache -v "$PWD":/work -e COQUI_TOS_AGREED=1 demod-voice:latest xtts-zero-shot ...
# The XTTS licence is never accepted for the user: they pass COQUI_TOS_AGREED=1 (or --accept-license) themselves.
# As a service (a non-loopback address needs API keys: serve.keys or serve.keys_file in a mounted config):
#   docker run --rm -p 5002:5002 -p 10200:10200 -v demod-cache:/cache demod-voice:latest \
#     serve --host 0.0.0.0 --wyoming tcp://0.0.0.0:10200
{ dockerTools, demod-voice, cacert, bashInteractive, coreutils, ffmpeg, name ? "demod-voice", tag ? "latest" }:

dockerTools.buildLayeredImage {
  inherit name tag;
  contents = [ demod-voice cacert bashInteractive coreutils ffmpeg ];
  extraCommands = ''
    mkdir -p tmp cache work
    chmod 1777 tmp cache
  '';
  config = {
    Entrypoint = [ "${demod-voice}/bin/demod-voice" ];
    Cmd = [ "--help" ];
    WorkingDir = "/work";
    Env = [
      "HOME=/tmp"
      "XDG_CACHE_HOME=/cache"
      "SSL_CERT_FILE=${cacert}/etc/ssl/certs/ca-bundle.crt"
    ];
    Volumes = { "/cache" = { }; };
    ExposedPorts = { "5002/tcp" = { }; "10200/tcp" = { }; };
    Labels = { "org.opencontainers.image.title" = "demod-voice"; };
  };
}
