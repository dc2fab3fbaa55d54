# checks.<system>: the test suite, and a smoke run of the installed program, inside the build.
{ runCommand, python, demod-voice, src, ffmpeg, clang }:

let
  testEnv = python.withPackages (ps: demod-voice.runtimeDeps ps ++ demod-voice.testDeps ps);
in
{
  tests = runCommand "demod-voice-tests" { nativeBuildInputs = [ testEnv ffmpeg clang ]; } ''
    cp -r ${src} source && chmod -R u+w source && cd source
    export HOME=$TMPDIR XDG_CACHE_HOME=$TMPDIR/cache
    lint-imports
    python -m pytest -q -p no:cacheprovider
    touch $out
  '';
  smoke = runCommand "demod-voice-smoke" { nativeBuildInputs = [ demod-voice ]; } ''
    export HOME=$TMPDIR
    demod-voice --help > /dev/null
    demod-voice --version
    demod-voice health
    touch $out
  '';
}
