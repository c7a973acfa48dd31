using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("Consort.Tests")]

namespace Consort.Methods;
