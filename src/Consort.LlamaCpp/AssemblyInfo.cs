using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("Consort.Tests")]
[assembly: InternalsVisibleTo("Consort.Cli.Tests")]

namespace Consort.LlamaCpp;
